"""Attribution methods side by side, a sanity check, and how faithful each map is.

* :func:`attribute` runs one method on one image: our one-pass Grad-CAM
  (:mod:`resnet_viz.explain`) or a captum method, called as captum documents it.
* :func:`sanity_check` is the cascading model-parameter randomisation of Adebayo
  et al. (2018), "Sanity Checks for Saliency Maps", on a private copy.
* :func:`evaluate_attributions` scores maps on images with known object masks:
  pointing game, mass inside the object, and deletion / insertion curves
  (Petsiuk et al. 2018, RISE), next to a random map as the baseline.

Thread safety follows :func:`resnet_viz.explain`: a shared model is only read.
Methods that register hooks (Guided Backprop, Guided Grad-CAM, DeepLift) run on a
private copy of the model, kept in a small pool per model so the copy is made once;
the others run on the model itself under its lock's shared side, in eval mode.
"""
from __future__ import annotations

import copy
import itertools
import threading
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .explain import grad_cam, read_only
from .imaging import image_to_tensor
from .locks import model_lock
from .models import TWINS, TwinNet

ATTRIBUTION_METHODS = ("Grad-CAM", "Saliency", "Integrated Gradients", "Gradient SHAP", "DeepLift",
                       "Guided Backprop", "Guided Grad-CAM", "Occlusion")
DEFAULT_METHOD = "Grad-CAM"
RANDOM = "Random"  # the baseline map of the evaluation: uniform noise
HOOKED = frozenset({"Guided Backprop", "Guided Grad-CAM", "DeepLift"})  # captum registers hooks on the model
EXPENSIVE = frozenset({"Integrated Gradients", "Occlusion"})  # many model evaluations per map
LAYER_METHODS = frozenset({"Grad-CAM"})  # raw output at a layer's resolution (1 x 1 x h x w)
POSITIVE_METHODS = frozenset({"Grad-CAM", "Occlusion"})  # signed evidence: the map keeps the positive part

_OPTIONS = {
    "Grad-CAM": {"layer"},
    "Saliency": set(),
    "Integrated Gradients": {"n_steps", "internal_batch_size", "smoothgrad", "nt_samples", "noise"},
    "Gradient SHAP": {"n_samples", "stdevs", "seed"},
    "DeepLift": set(),
    "Guided Backprop": set(),
    "Guided Grad-CAM": {"layer"},
    "Occlusion": {"window", "stride", "perturbations_per_eval"},
}
# Pixels (H x W) one internal batch may hold: 10 images at 224 x 224, everything at 32 x 32.
BATCH_PIXELS = 2 ** 19


@dataclass
class Attribution:
    """One attribution map.

    ``map`` is H x W in [0, 1] at the image's own size (divided by its maximum, so
    the ranking of pixels is the method's own); ``raw`` is the method's output as
    it came: 1 x 3 x H x W at the model's input size for pixel methods, 1 x 1 x h x w
    at the layer's resolution for Grad-CAM.
    """

    map: np.ndarray
    raw: torch.Tensor = field(repr=False)
    method: str
    target: int
    label: str
    options: dict = field(default_factory=dict)

    @property
    def pixel_method(self) -> bool:
        return self.method not in LAYER_METHODS


# --- inputs -----------------------------------------------------------------------------------------------

def prepare(model: TwinNet, image: Image.Image | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(x, out_size)``: the normalised 1 x 3 x H x W input and the size maps come back at."""
    if isinstance(image, Image.Image):
        x, out_size = image_to_tensor(image, model.preprocess), (image.height, image.width)
    elif isinstance(image, torch.Tensor):
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"expected a 1 x C x H x W tensor, got shape {tuple(image.shape)}")
        x, out_size = image, tuple(image.shape[-2:])
    else:
        raise TypeError(f"image must be a PIL image or a tensor, not {type(image).__name__}")
    param = next(model.parameters())
    return x.to(device=param.device, dtype=param.dtype), out_size


def _label(model: TwinNet, target: int) -> str:
    names = model.class_names
    return names[target] if names and target < len(names) else f"class {target}"


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """Occlusion's square window and stride for an input size: an eighth of the shorter side, half-overlapping.

    The number of model evaluations stays about 15 x 15 whatever the size.
    """
    window = max(2, round(min(height, width) / 8))
    return window, max(1, window // 2)


def batch_for(height: int, width: int, limit: int) -> int:
    """How many perturbed inputs of this size one internal batch holds (at most ``limit``)."""
    return int(max(1, min(limit, BATCH_PIXELS // max(1, height * width))))


# --- private copies for hooked methods ---------------------------------------------------------------------

def _stamp(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or changed in place."""
    return tuple((t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers()))


class _CopyPool:
    """Private eval-mode copies of shared models, reused while the original's tensors are unchanged."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._idle: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @contextmanager
    def borrow(self, model: nn.Module) -> Iterator[nn.Module]:
        with model_lock(model).shared():
            stamp = _stamp(model)
            private = None
            with self._lock:
                idle = self._idle.setdefault(model, [])
                while idle and private is None:
                    candidate, candidate_stamp = idle.pop()
                    if candidate_stamp == stamp:
                        private = candidate
            if private is None:
                private = copy.deepcopy(model)
                private.eval().requires_grad_(False)
        try:
            yield private
        finally:
            with self._lock:
                idle = self._idle.setdefault(model, [])
                if len(idle) < self.keep:
                    idle.append((private, stamp))

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()


_copies = _CopyPool()


@contextmanager
def _usable(model: TwinNet, method: str, private: bool) -> Iterator[TwinNet]:
    if private:  # already the caller's own copy (the sanity check)
        with torch.enable_grad():
            yield model
    elif method in HOOKED:
        with _copies.borrow(model) as own, torch.enable_grad():
            yield own
    else:
        with read_only(model) as shared, torch.enable_grad():
            yield shared


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global generators for captum's random draws, then restore them.

    captum draws from both (noise from torch, Gradient SHAP's baselines and path points from numpy). The
    generators are process-wide, so seeded calls take turns: two visitors' maps at once would otherwise
    draw from each other's seeds and differ from run to run.
    """
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK:
        state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                np.random.seed(seed)
                yield
        finally:
            np.random.set_state(state)


_GLOBAL_RNG_LOCK = threading.Lock()


# --- the methods ---------------------------------------------------------------------------------------------

def check_method(method: str, options: dict) -> None:
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[method])) or "none"
        raise ValueError(f"{method} has no option {', '.join(sorted(unknown))}; its options: {allowed}")


def run_captum(model: TwinNet, x: torch.Tensor, method: str, target: int, **options) -> tuple[torch.Tensor, dict]:
    """Call captum's implementation of ``method`` on ``model`` as captum documents it.

    Returns ``(raw, used)``: captum's output and the options it ran with (defaults
    filled in). ``model`` must be usable as is (eval mode; a private copy for hooked
    methods): :func:`attribute` takes care of that.
    """
    from captum import attr as ca

    h, w = x.shape[-2:]
    zeros = torch.zeros_like(x)  # the dataset's mean colour: inputs are normalised
    if method == "Saliency":
        return ca.Saliency(model).attribute(x, target=target, abs=True), {}
    if method == "Integrated Gradients":
        n_steps = int(options.get("n_steps", 32))
        used = {"n_steps": n_steps,
                "internal_batch_size": int(options.get("internal_batch_size", batch_for(h, w, n_steps))),
                "smoothgrad": bool(options.get("smoothgrad", False))}
        ig = ca.IntegratedGradients(model)
        if not used["smoothgrad"]:
            return ig.attribute(x, baselines=zeros, target=target, n_steps=n_steps,
                                internal_batch_size=used["internal_batch_size"]), used
        used["nt_samples"] = int(options.get("nt_samples", 8))
        used["noise"] = float(options.get("noise", 0.15))  # SmoothGrad's sigma, as a share of the input's range
        stdev = used["noise"] * float(x.max() - x.min())
        return ca.NoiseTunnel(ig).attribute(x, nt_type="smoothgrad", nt_samples=used["nt_samples"],
                                            nt_samples_batch_size=1, stdevs=stdev, baselines=zeros,
                                            target=target, n_steps=n_steps,
                                            internal_batch_size=used["internal_batch_size"]), used
    if method == "Gradient SHAP":
        used = {"n_samples": int(options.get("n_samples", 16)), "stdevs": float(options.get("stdevs", 0.1))}
        gen = torch.Generator().manual_seed(int(options.get("seed", 0)))
        noise = torch.randn(x.shape, generator=gen).to(x)
        baselines = torch.cat([zeros, noise])  # the mean colour and a noise image
        return ca.GradientShap(model).attribute(x, baselines=baselines, n_samples=used["n_samples"],
                                                stdevs=used["stdevs"], target=target), used
    if method == "DeepLift":
        return ca.DeepLift(model).attribute(x, baselines=zeros, target=target), {}
    if method == "Guided Backprop":
        return ca.GuidedBackprop(model).attribute(x, target=target), {}
    if method == "Guided Grad-CAM":
        layer = options.get("layer") or model.default_layer
        return ca.GuidedGradCam(model, getattr(model, layer)).attribute(x, target=target), {"layer": layer}
    if method == "Occlusion":
        window, stride = occlusion_window(h, w)
        window, stride = int(options.get("window", window)), int(options.get("stride", stride))
        per_eval = int(options.get("perturbations_per_eval", batch_for(h, w, 256)))
        used = {"window": window, "stride": stride, "perturbations_per_eval": per_eval}
        return ca.Occlusion(model).attribute(x, sliding_window_shapes=(x.shape[1], window, window),
                                             strides=(x.shape[1], stride, stride), baselines=0, target=target,
                                             perturbations_per_eval=per_eval), used
    raise ValueError(f"{method} is not a captum method here")


def to_map(raw: torch.Tensor, method: str, out_size: tuple[int, int]) -> np.ndarray:
    """Raw output -> H x W map in [0, 1] at ``out_size``.

    Gradient-type methods: absolute values summed over colour channels; Grad-CAM and
    Occlusion (signed evidence for the class): the positive part. Then divided by the
    maximum (an all-zero map stays zero).
    """
    raw = raw.detach().float()
    if method in POSITIVE_METHODS:
        m = raw.sum(dim=1, keepdim=True).clamp_min(0)
    else:
        m = raw.abs().sum(dim=1, keepdim=True)
    if tuple(m.shape[-2:]) != tuple(out_size):
        m = F.interpolate(m, size=tuple(out_size), mode="bilinear", align_corners=False).clamp_min(0)
    m = m[0, 0]
    peak = float(m.max())
    if peak > 0:
        m = m / peak
    return m.clamp(0, 1).cpu().numpy()


def _attribute_tensor(model: TwinNet, x: torch.Tensor, out_size, method: str, target: int | None,
                      options: dict, *, private: bool = False) -> Attribution:
    check_method(method, options)
    with _usable(model, method, private) as usable:
        if target is None:
            with torch.no_grad():
                target = int(usable(x)[0].argmax())
        target = int(target)
        if method == "Grad-CAM":
            layer = options.get("layer") or model.default_layer
            _, _, cams = grad_cam(usable, x, [target], layer=layer, upsample=False)
            raw, used = cams[:, None], {"layer": layer}  # 1 x 1 x h x w
        else:
            random = method == "Gradient SHAP" or (method == "Integrated Gradients" and options.get("smoothgrad"))
            seed = options.get("seed", 0) if random else None  # only random draws need the generators
            with warnings.catch_warnings(), _seeded(seed, x.device):
                warnings.simplefilter("ignore")  # captum's notes about hooks and in-place operations
                raw, used = run_captum(usable, x, method, target, **options)
    raw = raw.detach()
    return Attribution(map=to_map(raw, method, out_size), raw=raw, method=method, target=target,
                       label=_label(model, target), options=used)


def attribute(model: TwinNet, image: Image.Image | torch.Tensor, *, method: str = DEFAULT_METHOD,
              target: int | None = None, **options) -> Attribution:
    """Attribute ``model``'s score for ``target`` (default: its top class) on ``image`` with ``method``.

    ``image`` is a PIL image of any mode (preprocessed the way the model expects)
    or a normalised 1 x 3 x H x W tensor; ``.map`` comes back at the image's own
    size. ``method`` is one of :data:`ATTRIBUTION_METHODS`. Options:

    * Grad-CAM, Guided Grad-CAM: ``layer`` (a stage or block; default the last stage);
    * Integrated Gradients: ``n_steps`` (32), ``internal_batch_size`` (from the image
      size), ``smoothgrad`` (False: SmoothGrad through captum's NoiseTunnel),
      ``nt_samples`` (8) and ``noise`` (0.15 of the input's range);
    * Gradient SHAP: ``n_samples`` (16), ``stdevs`` (0.1), ``seed`` (0);
    * Occlusion: ``window`` and ``stride`` (from the image size), ``perturbations_per_eval``.

    Baselines are the all-zero normalised input (the data set's mean colour).
    Safe to call from many threads on one shared model; nothing is left on it.
    """
    x, out_size = prepare(model, image)
    return _attribute_tensor(model, x, out_size, method, target, options)


# --- the sanity check -------------------------------------------------------------------------------------------

@dataclass
class Step:
    """One step of the cascading randomisation: weights randomised from the head down to ``layer``.

    The first step (``layer == "original"``) is the trained model's own map.
    ``spearman`` is the rank correlation of the absolute maps with the original,
    ``ssim`` their structural similarity (both 1 for the original).
    """

    layer: str
    map: np.ndarray
    spearman: float
    ssim: float


def randomisation_order(model: TwinNet, granularity: str = "block") -> list[tuple[str, list[nn.Module]]]:
    """Units from the output to the input: the head, each block (or each stage), the stem."""
    head = [model.fc, model.final_bn]
    stem = [model.conv1, model.bn1]
    if granularity == "block":
        middle = [(name, [blk]) for name, blk in reversed(list(model.blocks()))]
    elif granularity == "stage":
        middle = [(stage, [getattr(model, stage)]) for stage in reversed(model.stage_names)]
    else:
        raise ValueError("granularity must be 'block' or 'stage'")
    return [("head", head), *middle, ("stem", stem)]


def randomise_(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    """Re-initialise weights in place: convolutions and linear layers Kaiming-normal (fan in, so signals keep
    their scale), biases zero, normalisation layers reset (weight 1, bias 0, statistics 0 and 1)."""
    with torch.no_grad():
        for root in modules:
            for m in root.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    w = torch.empty(m.weight.shape).normal_(generator=generator)  # on the CPU: one generator
                    m.weight.copy_(w * (2.0 / m.weight[0].numel()) ** 0.5)  # Kaiming normal, fan in
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_parameters()


def sanity_check(model: TwinNet, image: Image.Image | torch.Tensor, *, method: str = DEFAULT_METHOD,
                 target: int | None = None, seed: int = 0, granularity: str = "block",
                 on_step: Callable[[int, int], None] | None = None, **options) -> list[Step]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018) on a private copy of ``model``.

    Randomises the weights from the head down to the stem, one unit (``granularity``
    "block" or "stage") at a time, and maps ``target`` (default: the trained model's
    top class, kept fixed) after each step. A method whose maps stay similar while
    the weights are destroyed is not explaining the model. ``on_step(done, total)``
    reports progress. The shared model is not touched (weights, mode, hooks, ``.grad``).
    """
    check_method(method, options)
    x, out_size = prepare(model, image)
    with model_lock(model).shared():
        own = copy.deepcopy(model)
    own.eval().requires_grad_(False)
    order = randomisation_order(own, granularity)
    total = len(order) + 1
    first = _attribute_tensor(own, x, out_size, method, target, options, private=True)
    steps = [Step("original", first.map, 1.0, 1.0)]
    if on_step:
        on_step(1, total)
    generator = torch.Generator().manual_seed(seed)
    for i, (name, modules) in enumerate(order):
        randomise_(modules, generator)
        att = _attribute_tensor(own, x, out_size, method, first.target, options, private=True)
        steps.append(Step(name, att.map, spearman(first.map, att.map), ssim(first.map, att.map)))
        if on_step:
            on_step(i + 2, total)
    return steps


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    _, inverse, counts = np.unique(a.ravel(), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of ``|a|`` and ``|b|`` (0 when either is constant)."""
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes {a.shape} and {b.shape}")
    ra, rb = _ranks(np.abs(a)), _ranks(np.abs(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def ssim(a: np.ndarray, b: np.ndarray, *, window: int = 7, data_range: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004) of two maps in [0, 1].

    Uniform ``window`` x ``window`` windows over the valid region, sample
    covariances, K1 = 0.01 and K2 = 0.03 (scikit-image's defaults).
    """
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes {a.shape} and {b.shape}")
    win = min(window, *a.shape)
    win -= 1 - win % 2  # odd
    ta = torch.as_tensor(np.asarray(a, dtype=np.float64))[None, None]
    tb = torch.as_tensor(np.asarray(b, dtype=np.float64))[None, None]

    def mean(t):
        return F.avg_pool2d(t, win, stride=1)

    n = win * win
    cov = n / (n - 1) if n > 1 else 1.0
    mu_a, mu_b = mean(ta), mean(tb)
    var_a = cov * (mean(ta * ta) - mu_a ** 2)
    var_b = cov * (mean(tb * tb) - mu_b ** 2)
    cov_ab = cov * (mean(ta * tb) - mu_a * mu_b)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


# --- faithfulness metrics ---------------------------------------------------------------------------------------

def pointing_game(saliency: np.ndarray, mask: np.ndarray) -> float:
    """1 when the map's maximum lies on the object, 0 when not.

    Tied maxima count by the share of them on the object (a random pick among them),
    so a constant map scores the object's share of the image.
    """
    saliency, mask = _check_pair(saliency, mask)
    at_peak = saliency >= saliency.max()
    return float(mask[at_peak].mean())


def mass_inside(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's (non-negative) mass on the object; an all-zero map scores the object's share."""
    saliency, mask = _check_pair(saliency, mask)
    total = float(saliency.sum())
    return float(saliency[mask].sum()) / total if total > 0 else float(mask.mean())


def _check_pair(saliency, mask):
    saliency, mask = np.asarray(saliency, dtype=np.float64), np.asarray(mask, dtype=bool)
    if saliency.shape != mask.shape:
        raise ValueError(f"map {saliency.shape} and mask {mask.shape} differ in size")
    if (saliency < 0).any():
        raise ValueError("maps must be non-negative")
    return saliency, mask


def auc(curve: Sequence[float]) -> float:
    """Area under a curve sampled at evenly spaced fractions 0 .. 1 (trapezoids)."""
    c = np.asarray(curve, dtype=np.float64)
    if c.size < 2:
        raise ValueError("a curve needs at least two points")
    return float((c.sum() - (c[0] + c[-1]) / 2) / (c.size - 1))


def blur(x: torch.Tensor) -> torch.Tensor:
    """A strongly blurred copy of a 1 x C x H x W input: the insertion curve's starting canvas."""
    k = max(3, (min(x.shape[-2:]) // 4) | 1)
    pad = k // 2
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return F.avg_pool2d(padded, k, stride=1)


def perturbation_curves(model: TwinNet, x: torch.Tensor, saliency: np.ndarray, target: int, *, steps: int = 32,
                        seed: int = 0, deletion_baseline: float | torch.Tensor = 0.0,
                        insertion_baseline: str | float | torch.Tensor = "blur") -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion curves (Petsiuk et al. 2018): the target's probability as the most important
    pixels are removed (replaced by ``deletion_baseline``, the mean colour) or revealed on a blurred canvas.

    ``saliency`` is H x W at the input's size; ties are broken at random (``seed``).
    Each curve has ``steps + 1`` points, at fractions 0, 1/steps, ..., 1.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected a 1 x C x H x W tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    s = np.asarray(saliency, dtype=np.float64)
    if s.shape != (h, w):
        raise ValueError(f"map {s.shape} does not match the input {(h, w)}")
    n = h * w
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), -s.ravel()))  # most important first, ties in random order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    counts = np.round(np.linspace(0, n, steps + 1)).astype(np.int64)
    device = x.device
    chosen = torch.from_numpy(rank[None, :] < counts[:, None]).to(device).view(steps + 1, 1, h, w)
    if isinstance(insertion_baseline, str):
        if insertion_baseline != "blur":
            raise ValueError("insertion_baseline must be 'blur', a number or a tensor")
        canvas = blur(x)
    else:
        canvas = torch.as_tensor(insertion_baseline, dtype=x.dtype, device=device).expand_as(x)
    removed = torch.as_tensor(deletion_baseline, dtype=x.dtype, device=device).expand_as(x)
    deleted = torch.where(chosen, removed, x)
    inserted = torch.where(chosen, x, canvas)
    batch = batch_for(h, w, 2 * (steps + 1))
    probs = []
    with read_only(model), torch.no_grad():
        both = torch.cat([deleted, inserted])
        for i in range(0, len(both), batch):
            probs.append(torch.softmax(model(both[i:i + batch]).float(), dim=1)[:, target])
    p = torch.cat(probs).cpu().numpy()
    return p[:steps + 1], p[steps + 1:]


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """The baseline every method must beat: uniform noise."""
    return np.random.default_rng(seed).random(shape)


MethodSpec = str | tuple[str, str, dict]


def _specs(methods: Sequence[MethodSpec], include_random: bool) -> list[tuple[str, str, dict]]:
    specs = [(m, m, {}) if isinstance(m, str) else (m[0], m[1], dict(m[2])) for m in methods]
    for _, method, options in specs:
        if method != RANDOM:
            check_method(method, options)
    if include_random and all(method != RANDOM for _, method, _ in specs):
        specs.append((RANDOM, RANDOM, {}))
    return specs


def evaluate_attributions(model: TwinNet, images: torch.Tensor, labels: Sequence[int], masks, *,
                          methods: Sequence[MethodSpec] = ATTRIBUTION_METHODS, steps: int = 32, seed: int = 0,
                          include_random: bool = True, on_progress: Callable[[int, int], None] | None = None,
                          should_stop: Callable[[], bool] | None = None) -> list[dict]:
    """Score each method's maps of the true class on images with object masks.

    ``images`` are normalised N x 3 x H x W (as :func:`resnet_viz.make_shapes` gives),
    ``labels`` the classes to explain, ``masks`` N x H x W booleans (or None: then only
    the deletion and insertion curves, which need no mask). ``methods`` are names or
    ``(row name, method, options)``, e.g. ``("Grad-CAM layer2", "Grad-CAM", {"layer": "layer2"})``;
    a ``Random`` row (uniform noise) is added as the baseline.

    One row per method: ``method``, ``images``, ``pointing_game`` (share of images whose
    map peaks on the object), ``mass_inside`` (mean share of the map on the object),
    ``object_share`` (mean share of the image the object covers: a random map's
    expected score on both), ``deletion_auc`` (lower is better), ``insertion_auc``
    (higher is better), and the mean curves ``deletion_curve`` and ``insertion_curve``.
    """
    specs = _specs(methods, include_random)
    n = len(images)
    masks = None if masks is None else np.asarray(masks, dtype=bool)
    total, done = n * len(specs), 0
    rows = []
    for name, method, options in specs:
        pg, mi, dels, ins = [], [], [], []
        for i in range(n):
            if should_stop and should_stop():
                return rows
            x = images[i:i + 1]
            target = int(labels[i])
            if method == RANDOM:
                saliency = random_map(tuple(x.shape[-2:]), seed + 7919 * i)
            else:
                saliency = attribute(model, x, method=method, target=target, **options).map
            if masks is not None:
                pg.append(pointing_game(saliency, masks[i]))
                mi.append(mass_inside(saliency, masks[i]))
            d, s = perturbation_curves(model, prepare(model, x)[0], saliency, target, steps=steps, seed=seed + i)
            dels.append(d)
            ins.append(s)
            done += 1
            if on_progress:
                on_progress(done, total)
        dcurve, icurve = np.mean(dels, axis=0), np.mean(ins, axis=0)
        rows.append({
            "method": name, "images": n,
            "pointing_game": float(np.mean(pg)) if pg else None,
            "mass_inside": float(np.mean(mi)) if mi else None,
            "object_share": float(masks[:n].mean()) if masks is not None else None,
            "deletion_auc": float(np.mean([auc(c) for c in dels])),
            "insertion_auc": float(np.mean([auc(c) for c in ins])),
            "deletion_curve": [round(float(v), 4) for v in dcurve],
            "insertion_curve": [round(float(v), 4) for v in icurve],
        })
    return rows


def evaluate_image(model: TwinNet, image: Image.Image | torch.Tensor, target: int, *, mask: np.ndarray | None = None,
                   methods: Sequence[MethodSpec] = ATTRIBUTION_METHODS, steps: int = 32, seed: int = 0,
                   on_progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """:func:`evaluate_attributions` on one image of any size (an upload, a photo), for class ``target``.

    Maps are scored at the model's input size; ``mask`` (at the image's size) is resized to it.
    """
    x, _ = prepare(model, image)
    masks = None
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
        masks = (F.interpolate(m, size=tuple(x.shape[-2:]), mode="nearest")[0] > 0.5).cpu().numpy()
    return evaluate_attributions(model, x, [target], masks, methods=methods, steps=steps, seed=seed,
                                 on_progress=on_progress)


TABLE_COLUMNS = ("method", "images", "pointing_game", "mass_inside", "object_share", "deletion_auc",
                 "insertion_auc")


def rows_to_csv(rows: list[dict]) -> str:
    """The evaluation table as CSV (curves left out)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else (f"{row[k]:.4f}" if isinstance(row[k], float) else row[k])
                         for k in TABLE_COLUMNS])
    return buf.getvalue()


# --- precomputed tables for the bundled twins --------------------------------------------------------------------

PRECOMPUTED_DIR = Path(__file__).parent / "assets" / "attributions"
EXTRA_LAYERS = ("layer2", "layer1")  # Grad-CAM at earlier stages: does another layer point better?


def granularity_for(model: TwinNet) -> str:
    """Block by block for short networks, stage by stage for deep ones (a readable strip)."""
    return "block" if sum(1 for _ in model.blocks()) <= 12 else "stage"


def evaluation_methods(model: TwinNet) -> list[MethodSpec]:
    """Every method, plus Grad-CAM at the earlier stages."""
    extra = [(f"Grad-CAM ({layer})", "Grad-CAM", {"layer": layer}) for layer in EXTRA_LAYERS
             if layer in model.stage_names and layer != model.default_layer]
    return [*ATTRIBUTION_METHODS, *extra]


def mean_sanity_curves(model: TwinNet, images: torch.Tensor, *, methods: Sequence[str] = ATTRIBUTION_METHODS,
                       seed: int = 0, on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Per method, the sanity check's mean Spearman and SSIM at each step over ``images``."""
    granularity = granularity_for(model)
    out, done = {}, 0
    for method in methods:
        per_image = []
        for i in range(len(images)):
            per_image.append(sanity_check(model, images[i:i + 1], method=method, seed=seed + i,
                                          granularity=granularity))
            done += 1
            if on_progress:
                on_progress(done, len(methods) * len(images))
        out[method] = {"layers": [s.layer for s in per_image[0]],
                       "spearman": [round(float(np.mean([steps[k].spearman for steps in per_image])), 4)
                                    for k in range(len(per_image[0]))],
                       "ssim": [round(float(np.mean([steps[k].ssim for steps in per_image])), 4)
                                for k in range(len(per_image[0]))]}
    return out


def precompute_bundled(name: str, *, twins: Sequence[str] = TWINS, images: int = 200,
                       sanity_images: int = 16, parts: Sequence[str] = ("evaluation", "sanity"),
                       log: Callable[[str], None] = print) -> Path:
    """Evaluate every method on ``images`` fresh test images of the shapes set for a bundled pair and write
    (or update, twin by twin and part by part) ``assets/attributions/<name>.json``."""
    import json
    import time

    from .bundled import load_bundled
    from .data import TEST_SEED, make_shapes

    resnet, plain, _ = load_bundled(name)
    x, labels, masks = make_shapes(images, seed=TEST_SEED)
    path = PRECOMPUTED_DIR / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update({"name": name, "images": images, "test_seed": TEST_SEED, "sanity_images": sanity_images,
                 "command": f"python -m resnet_viz attributions {name}"})
    data.setdefault("twins", {})
    for model in (resnet, plain):
        if model.twin not in twins:
            continue
        start = time.time()
        entry = data["twins"].setdefault(model.twin, {})
        entry["granularity"] = granularity_for(model)
        if "sanity" in parts:
            entry["sanity"] = mean_sanity_curves(model, x[:sanity_images])
        if "evaluation" in parts:
            entry["rows"] = evaluate_attributions(model, x, labels, masks, methods=evaluation_methods(model))
        log(f"{name} {model.twin}: {time.time() - start:.0f} s")
        for row in entry.get("rows", []):
            log(f"  {row['method']:>22}: pointing {row['pointing_game']:.3f}  mass {row['mass_inside']:.3f}  "
                f"deletion {row['deletion_auc']:.3f}  insertion {row['insertion_auc']:.3f}")
        PRECOMPUTED_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def load_precomputed(name: str) -> dict | None:
    """The shipped evaluation of a bundled pair (see :func:`precompute_bundled`), or None."""
    import json

    path = PRECOMPUTED_DIR / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
