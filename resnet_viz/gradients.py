"""Gradient flow: how large the loss gradient is at every layer, and how large the signal is.

One forward and one backward pass give both views of a network:

* the L2 norm of the loss gradient for every *main-path* weight (stem
  convolution, every block convolution, final linear layer; shortcut
  projections left out), ordered from input to output;
* the standard deviation of every block's output (the forward signal).

BatchNorm uses the statistics of the batch by default (as in training and in
the initialisation analyses of He et al. 2015 and Yang et al. 2019) without
touching the running statistics; the model is left exactly as it was found.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import SHAPE_CLASSES, make_shapes
from .locks import model_lock
from .models import CIFAR_ARCH, TWINS, TwinNet, build_twins

BATCH_KINDS = ("shapes", "noise")
# He et al.'s CIFAR depths (6n + 2) for the depth sweep.
SWEEP_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
NUM_CLASSES = len(SHAPE_CLASSES)


def main_path_weights(model: TwinNet) -> list[tuple[str, torch.Tensor]]:
    """The weights a signal must cross from input to output, in order.

    The stem convolution, each block's convolutions, the final linear layer.
    Shortcut projections (``downsample``) and normalisation parameters are left
    out, so a ResNet and its plain twin list exactly the same layers.
    """
    weights = [("conv1", model.conv1.weight)]
    for block_name, block in model.blocks():
        for conv in ("conv1", "conv2", "conv3"):
            if hasattr(block, conv):
                weights.append((f"{block_name}.{conv}", getattr(block, conv).weight))
    weights.append(("fc", model.fc.weight))
    return weights


@contextlib.contextmanager
def _probe_state(model: nn.Module, weights: Sequence[torch.Tensor], batch_stats: bool) -> Iterator[None]:
    """Temporarily set what the probe needs; restore every flag afterwards.

    With ``batch_stats`` BatchNorm runs in training mode but with
    ``track_running_stats`` off, so it normalises with the batch's statistics
    and leaves ``running_mean``/``running_var``/``num_batches_tracked`` alone.
    """
    with model_lock(model).exclusive():  # other threads never see the temporary state
        modes = [(m, m.training) for m in model.modules()]
        bn_flags = [
            (m, m.track_running_stats) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        requires = [(w, w.requires_grad) for w in weights]
        try:
            model.train(batch_stats)
            if batch_stats:
                for bn, _ in bn_flags:
                    bn.track_running_stats = False
            for w in weights:
                w.requires_grad_(True)
            yield
        finally:
            for m, training in modes:
                m.training = training
            for bn, flag in bn_flags:
                bn.track_running_stats = flag
            for w, flag in requires:
                w.requires_grad_(flag)


@dataclass(frozen=True)
class GradientFlow:
    """Both views of one network on one batch.

    ``layers``/``grad_norms``: main-path weights, input to output.
    ``blocks``/``signal_std``: the stem and every block, input to output, with
    the standard deviation of their output.
    """

    twin: str
    layers: list[str]
    grad_norms: list[float]
    blocks: list[str]
    signal_std: list[float]
    loss: float

    @property
    def ratio(self) -> float:
        """First/last gradient-norm ratio: < 1 the gradient shrinks toward the input, > 1 it grows."""
        return first_last_ratio(self.grad_norms)


def first_last_ratio(norms: Sequence[float] | Sequence[tuple[str, float]]) -> float:
    """Gradient norm at the first layer divided by that at the last layer."""
    head, tail = norms[0], norms[-1]
    first = head[1] if isinstance(head, tuple) else head
    last = tail[1] if isinstance(tail, tuple) else tail
    if last == 0:
        return math.nan if first == 0 else math.inf
    return first / last


def _flow(
    model: TwinNet, x: torch.Tensor, y: torch.Tensor, *, batch_stats: bool, record_signals: bool
) -> tuple[list[str], list[float], list[str], list[float], float]:
    named = main_path_weights(model)
    names = [name for name, _ in named]
    weights = [w for _, w in named]
    with _probe_state(model, weights, batch_stats), torch.enable_grad():
        blocks, signals = [], []
        h = x
        for unit_name, unit in model.units():
            h = unit(h)
            if record_signals and unit_name != "head":
                blocks.append(unit_name)
                signals.append(h.detach().float().std())
        loss = F.cross_entropy(h, y)
        # autograd.grad returns the gradients instead of accumulating them in
        # .grad, and skips every parameter nobody asked about.
        grads = torch.autograd.grad(loss, weights)
    # One device sync for all numbers.
    stacked = torch.stack([torch.linalg.vector_norm(g.float()) for g in grads] + signals + [loss.detach().float()])
    numbers: list[float] = stacked.cpu().double().tolist()
    n = len(weights)
    return names, numbers[:n], blocks, numbers[n:-1], numbers[-1]


def gradient_norms(
    model: TwinNet, x: torch.Tensor, y: torch.Tensor, *, batch_stats: bool = True
) -> list[tuple[str, float]]:
    """``[(layer_name, norm), ...]``: the L2 norm of the cross-entropy loss gradient
    for every main-path weight, ordered from input to output.

    One forward and one backward pass. ``batch_stats=True`` normalises
    BatchNorm layers with the batch's own statistics (training behaviour, the
    setting of the gradient-at-initialisation analyses); ``False`` uses the
    model's current mode. The model's modes, running statistics,
    ``requires_grad`` flags and ``.grad`` are left untouched.
    """
    names, norms, *_ = _flow(model, x, y, batch_stats=batch_stats, record_signals=False)
    return list(zip(names, norms))


def forward_signals(model: TwinNet, x: torch.Tensor, *, batch_stats: bool = True) -> list[tuple[str, float]]:
    """``[(unit_name, std), ...]``: the standard deviation of the output of the stem and of every block."""
    with _probe_state(model, [], batch_stats), torch.no_grad():
        h, out = x, []
        for unit_name, unit in model.units()[:-1]:
            h = unit(h)
            out.append((unit_name, h.float().std()))
    stds = torch.stack([s for _, s in out]).cpu().double().tolist()
    return [(name, s) for (name, _), s in zip(out, stds)]


def gradient_flow(model: TwinNet, x: torch.Tensor, y: torch.Tensor, *, batch_stats: bool = True) -> GradientFlow:
    """Gradient norms and forward signals of ``model`` from a single forward/backward pass."""
    layers, norms, blocks, signals, loss = _flow(model, x, y, batch_stats=batch_stats, record_signals=True)
    return GradientFlow(twin=model.twin, layers=layers, grad_norms=norms, blocks=blocks, signal_std=signals, loss=loss)


def example_batch(
    kind: str = "shapes", *, arch: str = CIFAR_ARCH, batch_size: int = 16, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch ``(x, y)`` sized for ``arch``: bundled shapes images, or Gaussian noise with random labels.

    CIFAR networks get 32x32 images, torchvision networks 224x224. Labels are
    in ``range(8)`` (the shapes classes), so build models with ``num_classes=8``.
    """
    if kind not in BATCH_KINDS:
        raise ValueError(f"batch must be one of {list(BATCH_KINDS)}, got {kind!r}")
    size = 32 if arch == CIFAR_ARCH else 224
    if kind == "shapes":
        x, y, _ = make_shapes(batch_size, seed=seed, size=size)
        return x, y
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, 3, size, size, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (batch_size,), generator=gen)
    return x, y


def twin_flow(
    arch: str = CIFAR_ARCH,
    depth: int = 20,
    twin: str = "resnet",
    *,
    norm: str = "batch",
    activation: str = "relu",
    block: str = "post",
    init: str = "kaiming",
    batch: str = "shapes",
    seed: int = 0,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> GradientFlow:
    """Build a fresh twin pair and measure one of them (``twin`` is ``"resnet"`` or ``"plain"``).

    ``seed`` fixes both the initial weights and the batch, so the two twins of one
    setting can be measured (and cached) one at a time and still see the same
    weights and images. ``depth`` is used by CIFAR networks only.
    """
    if twin not in TWINS:
        raise ValueError(f"twin must be one of {list(TWINS)}, got {twin!r}")
    if batch_size is None:
        batch_size = 16 if arch == CIFAR_ARCH else 8
    x, y = example_batch(batch, arch=arch, batch_size=batch_size, seed=seed)
    resnet, plain = build_twins(
        arch, seed=seed, depth=depth, norm=norm, activation=activation, block=block, init=init, num_classes=NUM_CLASSES
    )
    model = resnet if twin == "resnet" else plain
    return gradient_flow(model.to(device), x.to(device), y.to(device))


MeasureTwin = Callable[..., GradientFlow]  # twin_flow's signature: (arch, depth, twin, **options)


def twin_flows(
    arch: str = CIFAR_ARCH,
    *,
    depth: int = 20,
    progress: Callable[[float, str], None] | None = None,
    measure: MeasureTwin = twin_flow,
    **options,
) -> dict[str, GradientFlow]:
    """Both twins of a fresh pair: ``{"resnet": GradientFlow, "plain": GradientFlow}`` (options as :func:`twin_flow`).

    ``measure`` builds and measures one twin; a caller that caches each twin's
    flow passes its cached :func:`twin_flow`.
    """
    flows = {}
    for i, twin in enumerate(TWINS):
        if progress:
            progress(i / len(TWINS), f"{twin}: forward and backward pass")
        flows[twin] = measure(arch, depth, twin, **options)
    if progress:
        progress(1.0, "done")
    return flows


@dataclass(frozen=True)
class DepthSweep:
    """First/last gradient-norm ratio of each twin at each CIFAR depth."""

    depths: list[int]
    ratios: dict[str, list[float]]


def depth_sweep(
    depths: Sequence[int] | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
    measure: MeasureTwin = twin_flow,
    **options,
) -> DepthSweep:
    """First/last gradient ratio against depth for both twins (CIFAR networks, options as :func:`twin_flow`).

    ``depths`` defaults to :data:`SWEEP_DEPTHS`; ``measure`` as in :func:`twin_flows`.
    """
    depths = list(SWEEP_DEPTHS if depths is None else depths)
    ratios: dict[str, list[float]] = {twin: [] for twin in TWINS}
    for i, depth in enumerate(depths):
        if progress:
            progress(i / len(depths), f"depth {depth}")
        for twin in TWINS:
            ratios[twin].append(measure(CIFAR_ARCH, depth, twin, **options).ratio)
    if progress:
        progress(1.0, "done")
    return DepthSweep(depths=depths, ratios=ratios)
