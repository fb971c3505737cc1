"""ResNets and their plain twins.

A *twin* pair is two networks with identical layers and identical initial
weights; the plain twin simply never adds the shortcut.  The code follows the
shape of torchvision's ``models/resnet.py`` (same module and state-dict names
for ``resnet18/34/50``) with two changes that make the models safe to probe:

* no in-place operations, and one activation module per use, so forward hooks
  and autograd always see the tensors they expect;
* every network is a flat chain of *units* (``stem``, ``layer1.0``, ...,
  ``head``) that :meth:`TwinNet.run` can execute piece by piece.  Grad-CAM,
  block probes and lesions use this instead of hooks, so a shared model is
  never mutated while it is being explained.
"""

from __future__ import annotations

from typing import Callable, Iterator, Literal, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from .i18n import N_, _

TWINS = ("resnet", "plain")  # the order every chart, table and file lists the twins in
N_("Plain twin"), N_("plain twin")


def twin_label(twin: str, *, lowercase: bool = False, skips_removed: bool = False) -> str:
    """A twin's name in the current language: "ResNet" or "Plain twin".

    ``lowercase`` gives the form used inside a sentence; ``skips_removed`` names a trained
    ResNet whose skips were cut (ImageNet weights). Any other key is returned as it is.
    """
    if twin == "resnet":
        return "ResNet"
    if twin != "plain":
        return twin
    if skips_removed:
        return _("Plain twin (skip connections removed)")
    return _("plain twin") if lowercase else _("Plain twin")


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
NORMS = ("batch", "none")
BLOCKS = ("post", "pre")
SHORTCUTS = ("A", "B")
INITS = ("kaiming", "xavier", "default")
CIFAR_ARCH = "cifar"
TORCHVISION_ARCHS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
}
ARCHS = (CIFAR_ARCH, *TORCHVISION_ARCHS)

# Inputs are normalised with these unless a model says otherwise.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


def _act(kind: str) -> nn.Module:
    return ACTIVATIONS[kind]()


def _conv(cin: int, cout: int, k: int, stride: int = 1, *, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


class PadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample and zero-pad channels (no weights)."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class _Block(nn.Module):
    """Shared logic of basic and bottleneck blocks: y = F(x) + shortcut(x)."""

    expansion = 1
    downsample: nn.Module | None  # set by each subclass: None for an identity shortcut or a plain block

    def __init__(self, *, residual: bool, preact: bool, activation: str):
        super().__init__()
        self.residual = residual
        self.preact = preact
        # Post-activation blocks apply their last activation after the sum.
        self.act_out = nn.Identity() if preact else _act(activation)

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # F(x)
        raise NotImplementedError

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) if self.downsample is not None else x

    def combine(self, fx: torch.Tensor, sx: torch.Tensor | None) -> torch.Tensor:
        """The block's output given F(x) and the shortcut (None for plain blocks)."""
        return self.act_out(fx if sx is None else fx + sx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fx = self.branch(x)
        return self.combine(fx, self.shortcut(x) if self.residual else None)

    def skip_only(self, x: torch.Tensor) -> torch.Tensor:
        """The block with F deleted (a lesion): what the identity path alone gives."""
        return self.act_out(self.shortcut(x))  # F(x) = 0: only the identity path and the final activation


def _make_downsample(cin: int, cout: int, stride: int, *, shortcut: str, norm: str) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    if shortcut == "A":
        return PadShortcut(stride, cout - cin)
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))


class BasicBlock(_Block):
    expansion = 1

    def __init__(
        self, cin, planes, stride=1, *, residual=True, norm="batch", activation="relu", preact=False, shortcut="B"
    ):
        super().__init__(residual=residual, preact=preact, activation=activation)
        bias = norm == "none"
        cout = planes * self.expansion
        if preact:  # He et al. 2016: norm -> act -> conv, twice; identity path untouched
            self.bn1, self.act1 = _norm(norm, cin), _act(activation)
            self.conv1 = _conv(cin, planes, 3, stride, bias=bias)
            self.bn2, self.act2 = _norm(norm, planes), _act(activation)
            self.conv2 = _conv(planes, cout, 3, bias=bias)
        else:  # He et al. 2015: conv -> norm -> act -> conv -> norm, act after the sum
            self.conv1 = _conv(cin, planes, 3, stride, bias=bias)
            self.bn1, self.act1 = _norm(norm, planes), _act(activation)
            self.conv2 = _conv(planes, cout, 3, bias=bias)
            self.bn2 = _norm(norm, cout)
        self.downsample = _make_downsample(cin, cout, stride, shortcut=shortcut, norm=norm) if residual else None

    def branch(self, x):
        if self.preact:
            return self.conv2(self.act2(self.bn2(self.conv1(self.act1(self.bn1(x))))))
        return self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))


class Bottleneck(_Block):
    expansion = 4

    def __init__(
        self, cin, planes, stride=1, *, residual=True, norm="batch", activation="relu", preact=False, shortcut="B"
    ):
        super().__init__(residual=residual, preact=preact, activation=activation)
        bias = norm == "none"
        cout = planes * self.expansion
        if preact:
            self.bn1, self.act1 = _norm(norm, cin), _act(activation)
            self.conv1 = _conv(cin, planes, 1, bias=bias)
            self.bn2, self.act2 = _norm(norm, planes), _act(activation)
            self.conv2 = _conv(planes, planes, 3, stride, bias=bias)
            self.bn3, self.act3 = _norm(norm, planes), _act(activation)
            self.conv3 = _conv(planes, cout, 1, bias=bias)
        else:  # torchvision v1.5: the stride sits on the 3x3 convolution
            self.conv1 = _conv(cin, planes, 1, bias=bias)
            self.bn1, self.act1 = _norm(norm, planes), _act(activation)
            self.conv2 = _conv(planes, planes, 3, stride, bias=bias)
            self.bn2, self.act2 = _norm(norm, planes), _act(activation)
            self.conv3 = _conv(planes, cout, 1, bias=bias)
            self.bn3 = _norm(norm, cout)
        self.downsample = _make_downsample(cin, cout, stride, shortcut=shortcut, norm=norm) if residual else None

    def branch(self, x):
        if self.preact:
            h = self.conv1(self.act1(self.bn1(x)))
            h = self.conv2(self.act2(self.bn2(h)))
            return self.conv3(self.act3(self.bn3(h)))
        h = self.act1(self.bn1(self.conv1(x)))
        h = self.act2(self.bn2(self.conv2(h)))
        return self.bn3(self.conv3(h))


Unit = tuple[str, Callable[[torch.Tensor], torch.Tensor]]


class TwinNet(nn.Module):
    """A ResNet (``residual=True``) or its plain twin (``residual=False``).

    Attributes worth knowing: ``twin`` ("resnet" or "plain"), ``config`` (the
    options it was built with), ``class_names`` and ``preprocess`` (how to turn
    an image into its input).
    """

    def __init__(
        self,
        *,
        arch: str,
        stage_blocks: list[int],
        stage_planes: list[int],
        block: type[BasicBlock] | type[Bottleneck],
        residual: bool,
        num_classes: int,
        in_channels: int,
        norm: str,
        activation: str,
        preact: bool,
        shortcut: str,
        imagenet_stem: bool,
    ):
        super().__init__()
        self.arch = arch
        self.residual = residual
        self.twin = "resnet" if residual else "plain"
        self.class_names: list[str] | None = None
        self.preprocess: dict = {}
        self.config: dict = {}
        self.preact = preact
        bias = norm == "none"
        stem_width = stage_planes[0] if not imagenet_stem else 64
        if imagenet_stem:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=bias)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = _conv(in_channels, stem_width, 3, bias=bias)
            self.maxpool = nn.Identity()
        # A pre-activation network normalises inside its first block instead.
        self.bn1 = _norm(norm, stem_width) if not preact else nn.Identity()
        self.relu = _act(activation) if not preact else nn.Identity()

        cin = stem_width
        self.stage_names: list[str] = []
        for i, (n, planes) in enumerate(zip(stage_blocks, stage_planes)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    block(
                        cin,
                        planes,
                        stride,
                        residual=residual,
                        norm=norm,
                        activation=activation,
                        preact=preact,
                        shortcut=shortcut,
                    )
                )
                cin = planes * block.expansion
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
        self.final_bn = _norm(norm, cin) if preact else nn.Identity()
        self.final_act = _act(activation) if preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin

    # -- the flat chain of units ------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_act(self.final_bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def blocks(self) -> Iterator[tuple[str, _Block]]:
        """Residual blocks in order, with their names (``layer1.0``, ...)."""
        for stage in self.stage_names:
            for j, blk in enumerate(getattr(self, stage)):
                yield f"{stage}.{j}", blk

    def units(self) -> list[Unit]:
        return [("stem", self.stem), *self.blocks(), ("head", self.head)]

    def unit_index(self, layer: str) -> int:
        """Index of the unit whose output is ``layer``'s output.

        ``layer`` is ``"stem"``, a stage (``"layer4"``: its last block), or a block
        (``"layer3.1"``).
        """
        names = [name for name, _ in self.units()]
        if layer in self.stage_names:
            layer = f"{layer}.{len(getattr(self, layer)) - 1}"
        if layer not in names or layer == "head":
            raise ValueError(f"unknown layer {layer!r}; choose one of {['stem', *self.stage_names, *names[1:-1]]}")
        return names.index(layer)

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run units ``start`` .. ``stop - 1`` (all of them by default)."""
        for _name, unit in self.units()[start:stop]:
            x = unit(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stage_names:
            x = getattr(self, stage)(x)
        return self.head(x)

    @property
    def default_layer(self) -> str:
        """Grad-CAM's default target: the last stage."""
        return self.stage_names[-1]


def _init_weights(model: TwinNet, init: str, activation: str) -> None:
    if init == "default":
        return
    gain_name: Literal["relu", "tanh", "sigmoid"] = (
        "relu" if activation == "relu" else "tanh" if activation == "tanh" else "sigmoid"
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if init == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_normal_(m.weight, gain=nn.init.calculate_gain(gain_name))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _BuildOptions(TypedDict):
    """The keyword options of :func:`_build` that :func:`build_twins` passes on and records in ``config``."""

    depth: int
    width: int
    num_classes: int
    in_channels: int
    norm: str
    activation: str
    block: str
    shortcut: str


def _build(
    arch: str,
    residual: bool,
    *,
    depth: int,
    width: int,
    num_classes: int,
    in_channels: int,
    norm: str,
    activation: str,
    block: str,
    shortcut: str,
) -> TwinNet:
    preact = block == "pre"
    if arch == CIFAR_ARCH:
        n = (depth - 2) // 6
        return TwinNet(
            arch=arch,
            stage_blocks=[n] * 3,
            stage_planes=[16 * width, 32 * width, 64 * width],
            block=BasicBlock,
            residual=residual,
            num_classes=num_classes,
            in_channels=in_channels,
            norm=norm,
            activation=activation,
            preact=preact,
            shortcut=shortcut,
            imagenet_stem=False,
        )
    kind, stage_blocks = TORCHVISION_ARCHS[arch]
    return TwinNet(
        arch=arch,
        stage_blocks=stage_blocks,
        stage_planes=[64 * width, 128 * width, 256 * width, 512 * width],
        block=BasicBlock if kind == "basic" else Bottleneck,
        residual=residual,
        num_classes=num_classes,
        in_channels=in_channels,
        norm=norm,
        activation=activation,
        preact=preact,
        shortcut=shortcut,
        imagenet_stem=True,
    )


def _check_options(arch, depth, width, norm, activation, block, shortcut, init, num_classes, in_channels):
    def bad(what, value, allowed):
        raise ValueError(f"{what} must be one of {list(allowed)}, got {value!r}")

    if arch not in ARCHS:
        bad("arch", arch, ARCHS)
    if norm not in NORMS:
        bad("norm", norm, NORMS)
    if activation not in ACTIVATIONS:
        bad("activation", activation, ACTIVATIONS)
    if block not in BLOCKS:
        bad("block", block, BLOCKS)
    if shortcut not in SHORTCUTS:
        bad("shortcut", shortcut, SHORTCUTS)
    if init not in INITS:
        bad("init", init, INITS)
    if arch == CIFAR_ARCH and (not isinstance(depth, int) or depth < 8 or (depth - 2) % 6):
        raise ValueError(f"CIFAR depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}")
    for what, value in (("width", width), ("num_classes", num_classes), ("in_channels", in_channels)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")


def build_twins(
    arch: str = CIFAR_ARCH,
    *,
    seed: int = 0,
    depth: int = 20,
    width: int = 1,
    num_classes: int | None = None,
    in_channels: int = 3,
    norm: str = "batch",
    activation: str = "relu",
    block: str = "post",
    shortcut: str | None = None,
    init: str = "kaiming",
    weights: str | None = None,
) -> tuple[TwinNet, TwinNet]:
    """Build a ResNet and its plain twin with the same initial weights.

    ``arch="cifar"`` gives He et al.'s 6n+2-layer CIFAR networks (3 stages of
    16/32/64 filters, ``shortcut="A"`` by default). ``arch="resnet18" |
    "resnet34" | "resnet50"`` gives torchvision's networks with the same
    state-dict names; ``weights="imagenet"`` loads torchvision's ImageNet
    weights (downloaded once into the torch hub cache). Both models come back in
    eval mode. Every weight the twins share is equal bit for bit; the plain
    twin has no shortcut weights.
    """
    if shortcut is None:
        shortcut = "A" if arch == CIFAR_ARCH else "B"
    if num_classes is None:
        num_classes = 10 if arch == CIFAR_ARCH else 1000
    _check_options(arch, depth, width, norm, activation, block, shortcut, init, num_classes, in_channels)
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    if weights == "imagenet" and (
        arch == CIFAR_ARCH
        or num_classes != 1000
        or width != 1
        or in_channels != 3
        or norm != "batch"
        or activation != "relu"
        or block != "post"
    ):
        raise ValueError(
            "ImageNet weights exist only for the standard torchvision architecture "
            "(resnet18/34/50, 1000 classes, BatchNorm, ReLU, post-activation blocks)"
        )
    options = _BuildOptions(
        depth=depth,
        width=width,
        num_classes=num_classes,
        in_channels=in_channels,
        norm=norm,
        activation=activation,
        block=block,
        shortcut=shortcut,
    )
    # The seed fixes the initial weights without touching the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        resnet = _build(arch, True, **options)
        _init_weights(resnet, init, activation)
        plain = _build(arch, False, **options)  # its random init is overwritten below
    if weights == "imagenet":
        from .weights import imagenet_state_dict

        resnet.load_state_dict(imagenet_state_dict(arch))
    copy_shared_weights(resnet, plain)
    config = dict(arch=arch, seed=seed, init=init, weights=weights, **options)
    if arch != CIFAR_ARCH:
        config.pop("depth")
    for model in (resnet, plain):
        model.config = dict(config)
        if arch == CIFAR_ARCH:
            model.preprocess = {
                "size": 32,
                "resize": "square",
                "mean": (0.5,) * in_channels,
                "std": (0.25,) * in_channels,
            }
        else:
            model.preprocess = {"size": 224, "resize": "shorter", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        model.eval()
    if weights == "imagenet":
        from .weights import imagenet_categories

        resnet.class_names = plain.class_names = imagenet_categories(arch)
    return resnet, plain


def copy_shared_weights(resnet: TwinNet, plain: TwinNet) -> None:
    """Copy every parameter and buffer of ``resnet`` that ``plain`` also has."""
    missing, _ = plain.load_state_dict(resnet.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"plain twin has weights the ResNet lacks: {missing[:5]}")
