"""Shattered gradients (Balduzzi et al. 2017): how a network's input gradient changes along a line of inputs.

Walk along a straight line of inputs, x(t) = x0 + t·v, and take the gradient of one output with respect to the
input at every point. In a shallow net or a ResNet the gradient changes smoothly from one point to the next
("brown noise"); in a deep plain net it becomes nearly independent from point to point ("white noise"), even
with BatchNorm, where its size is healthy. Shattered gradients are a reason deep plain nets are hard to train.

What is measured, for a line of ``n`` points:

* ``directional``: the directional derivative df/dt = ∇f(x(t))·v at every point (for the paper's 1-input nets,
  v = 1 and this is f'(x) itself);
* ``neighbour_correlation``: the Pearson correlation of the *full* input gradients ∇f(x(t_i)) and
  ∇f(x(t_{i+1})) of neighbouring points (every pixel and channel);
* :func:`autocorrelation` of ``directional`` (mean removed, normalised to 1 at lag 0);
* the summary number, :attr:`LineGradients.lag1`: the lag-1 autocorrelation of df/dt along the line. About 1:
  the gradient at the next point is almost the same; about 0: it is unrelated, like white noise (the
  spread of the estimate for white noise is about 1/√n, 0.06 for 256 points).

Every point's gradient is its own: networks run in eval mode. A network at initialisation has no running
statistics yet, so its BatchNorm layers take the mean and variance of the line's points once (on a private
copy; for image lines, 16 points spread along it) and keep them fixed; then one backward pass of the summed
outputs gives every point's gradient.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import make_shapes
from .locks import model_lock
from .models import CIFAR_ARCH, TWINS, TwinNet, build_twins

PAPER_WIDTH = 200  # rectifier units per layer (Balduzzi et al., Fig. 1)
PAPER_POINTS = 256  # inputs on the line
PAPER_RANGE = (-2.0, 2.0)
# Fig. 1: a 1-layer net, a 24-layer plain net, a 50-layer ResNet.
PAPER_NETS = {"shallow": (1, False), "plain": (24, False), "resnet": (50, True)}
FC_SWEEP_DEPTHS = (1, 2, 4, 8, 12, 16, 24, 32, 50)
CIFAR_SWEEP_DEPTHS = (8, 14, 20, 32, 56, 110)
CIFAR_POINTS = 64  # points on an image line: enough for the lag-1 number, fast enough for a page
CALIBRATION_POINTS = 16  # BatchNorm statistics of a network at init: from about this many points of its line
IMAGE_SPAN = 1.0  # t runs over [-span, span]; v has one unit of variance per pixel, like the normalised images


class FullyConnectedNet(nn.Module):
    """The paper's 1-input, 1-output rectifier nets, plain or residual, with or without BatchNorm.

    Plain, ``depth`` hidden layers: x → [Linear → BN → ReLU] × depth → Linear. Residual: x → Linear, then
    ``depth - 1`` pre-activation blocks h ← h + W·ReLU(BN(h)), then ReLU(BN(h)) → Linear, so both have
    ``depth`` hidden weight layers of ``width`` units. Weights: Kaiming normal (fan-in, ReLU gain); biases:
    PyTorch's default uniform(±1/√fan-in), which puts the first layer's kinks inside [-1, 1].
    """

    def __init__(self, depth: int, *, residual: bool, norm: str = "batch", width: int = PAPER_WIDTH, seed: int = 0):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        self.depth, self.residual, self.norm = depth, residual, norm
        self.twin = "resnet" if residual else "plain"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.first = nn.Linear(1, width)
            self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
            self.norms = nn.ModuleList(
                nn.BatchNorm1d(width) if norm == "batch" else nn.Identity() for _ in range(depth)
            )
            self.last = nn.Linear(width, 1)
            for layer in (self.first, *self.hidden):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if not self.residual:
            h = torch.relu(self.norms[0](h))
            for layer, norm in zip(self.hidden, self.norms[1:]):
                h = torch.relu(norm(layer(h)))
            return self.last(h)
        for layer, norm in zip(self.hidden, self.norms[1:]):
            h = h + layer(torch.relu(norm(h)))
        return self.last(torch.relu(self.norms[0](h)))


@dataclass(frozen=True)
class LineGradients:
    """One network's gradients along a line of inputs (see the module docstring)."""

    t: list[float]
    outputs: list[float]
    directional: list[float]
    neighbour_correlation: list[float]
    label: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def lag1(self) -> float:
        """The summary number: lag-1 autocorrelation of df/dt along the line (1 smooth, 0 white noise)."""
        return autocorrelation(self.directional, 1)[1]

    @property
    def mean_neighbour_correlation(self) -> float:
        """The mean correlation of full input gradients at neighbouring points."""
        return float(np.nanmean(self.neighbour_correlation)) if self.neighbour_correlation else math.nan

    def autocorrelation(self, max_lag: int | None = None) -> list[float]:
        return autocorrelation(self.directional, max_lag)


def autocorrelation(values: Sequence[float], max_lag: int | None = None) -> list[float]:
    """Autocorrelation of a sequence at lags 0 … ``max_lag`` (default n // 2): mean removed, 1 at lag 0.

    Normalised by the variance over all n points (the standard estimator), so white noise gives values
    within about ±2/√n of 0 at every lag above 0. A constant sequence gives NaN beyond lag 0.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        raise ValueError("autocorrelation needs at least 2 values")
    max_lag = n // 2 if max_lag is None else max_lag
    if not 0 <= max_lag < n:
        raise ValueError(f"max_lag must be in [0, {n - 1}], got {max_lag}")
    x = x - x.mean()
    var = float(np.dot(x, x))
    if var == 0:
        return [1.0] + [math.nan] * max_lag
    return [1.0] + [float(np.dot(x[:-k], x[k:]) / var) for k in range(1, max_lag + 1)]


def _row_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(torch.finfo(a.dtype).tiny)


def _freeze_batch_statistics(model: nn.Module, x: torch.Tensor, *, copy_model: bool = True) -> nn.Module:
    """An eval-mode ``model`` (a private copy unless ``copy_model`` is False) whose BatchNorm layers hold the mean
    and variance of batch ``x``."""
    copy_ = copy.deepcopy(model) if copy_model else model
    norms = [m for m in copy_.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: one batch gives exactly its statistics
    copy_.train()
    with torch.no_grad():
        copy_(x)
    return copy_.eval()


def line_gradients(
    model: nn.Module,
    x0: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    *,
    output: int = 0,
    batch_stats: bool = False,
    calibration_points: int | None = None,
    chunk: int = 256,
    label: str = "",
    settings: dict | None = None,
    copy_model: bool = True,
) -> LineGradients:
    """Gradients of output ``output`` of ``model`` along x(t) = x0 + t·v, in ``ceil(n / chunk)`` backward passes.

    ``x0`` and ``v`` have the shape of one input (no batch dimension), ``t`` is 1-D. ``batch_stats=True``
    (networks at initialisation) gives BatchNorm the statistics of the line (of about ``calibration_points``
    points spread along it; default all), fixed, on a private copy;
    otherwise the model is used as it is and must be in eval mode (a shared model is only read). A caller that
    built ``model`` for this call alone passes ``copy_model=False`` to let it be calibrated in place.
    """
    if t.ndim != 1 or len(t) < 3:
        raise ValueError("t must be 1-D with at least 3 points")
    if x0.shape != v.shape:
        raise ValueError(f"x0 and v must have the same shape, got {tuple(x0.shape)} and {tuple(v.shape)}")
    points = x0.unsqueeze(0) + t.reshape(-1, *([1] * x0.ndim)) * v.unsqueeze(0)
    if batch_stats:
        # A subset spread along the line gives the same statistics at a fraction of a forward pass.
        step = max(1, len(points) // calibration_points) if calibration_points else 1
        model = _freeze_batch_statistics(model, points[::step], copy_model=copy_model)
    elif model.training:
        raise ValueError("the model is in training mode: pass batch_stats=True or put it in eval mode")
    grads, outs = [], []
    with model_lock(model).shared(), torch.enable_grad():
        for start in range(0, len(points), chunk):
            xs = points[start : start + chunk].detach().requires_grad_(True)
            y = model(xs).reshape(len(xs), -1)[:, output]
            (g,) = torch.autograd.grad(y.sum(), xs)
            grads.append(g.detach().flatten(1).double())
            outs.append(y.detach().double())
    g = torch.cat(grads)
    directional = g @ v.flatten().double()
    neighbours = _row_correlation(g[:-1], g[1:]) if g.shape[1] > 1 else torch.empty(0)
    return LineGradients(
        t=t.double().tolist(),
        outputs=torch.cat(outs).tolist(),
        directional=directional.tolist(),
        neighbour_correlation=neighbours.tolist(),
        label=label,
        settings=dict(settings or {}),
    )


def paper_line(points: int = PAPER_POINTS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's inputs as a line: x0 = 0, v = 1, t on ``points`` points in [-2, 2]."""
    return torch.zeros(1), torch.ones(1), torch.linspace(*PAPER_RANGE, points)


def fc_line_gradients(
    depth: int, residual: bool, *, norm: str = "batch", seed: int = 0, points: int = PAPER_POINTS
) -> LineGradients:
    """f'(x) of one of the paper's fully connected nets at initialisation, on its 256 inputs in [-2, 2].

    Deterministic, so remembered (the figure's three nets are also points of the depth sweep); the result is
    shared: read it, don't change its lists.
    """
    return _fc_line_gradients(depth, residual, norm, seed, points)


@functools.lru_cache(maxsize=128)
def _fc_line_gradients(depth: int, residual: bool, norm: str, seed: int, points: int) -> LineGradients:
    net = FullyConnectedNet(depth, residual=residual, norm=norm, seed=seed).requires_grad_(False)
    x0, v, t = paper_line(points)
    return line_gradients(
        net,
        x0,
        v,
        t,
        batch_stats=norm == "batch",
        label=f"{net.twin}-{depth}",
        copy_model=False,
        settings=dict(kind="fc", depth=depth, residual=residual, norm=norm, seed=seed),
    )


def paper_figure_nets(*, norm: str = "batch", seed: int = 0) -> dict[str, LineGradients]:
    """The three nets of the paper's Fig. 1: ``{"shallow": 1 layer, "plain": 24 layers, "resnet": 50 layers}``."""
    return {
        key: fc_line_gradients(depth, residual, norm=norm, seed=seed) for key, (depth, residual) in PAPER_NETS.items()
    }


def image_line(
    x0: torch.Tensor, *, seed: int = 0, points: int = CIFAR_POINTS, span: float = IMAGE_SPAN
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A line through image ``x0``: v a Gaussian direction (unit variance per pixel), t on [-span, span]."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x0.shape, generator=gen)
    return x0, v, torch.linspace(-span, span, points)


def example_image(seed: int = 0) -> tuple[torch.Tensor, int]:
    """A normalised shapes image (32×32) and its label: the start x0 of the image lines."""
    x, y, _ = make_shapes(1, seed=seed)
    return x[0], int(y[0])


def twins_line_gradients(
    resnet: TwinNet,
    plain: TwinNet,
    *,
    at_init: bool,
    seed: int = 0,
    points: int = CIFAR_POINTS,
    span: float = IMAGE_SPAN,
    image_seed: int = 0,
    output: int | None = None,
    chunk: int = 64,
) -> dict[str, LineGradients]:
    """Both twins along the same line through a shapes image; ``output`` defaults to the image's class.

    ``at_init=True`` for untrained twins (BatchNorm takes the line's statistics); trained twins run in eval mode.
    """
    x0, label = example_image(image_seed)
    x0, v, t = image_line(x0, seed=seed, points=points, span=span)
    output = label if output is None else output
    device = next(resnet.parameters()).device
    x0, v, t = x0.to(device), v.to(device), t.to(device)
    return {
        model.twin: line_gradients(
            model,
            x0,
            v,
            t,
            output=output,
            batch_stats=at_init,
            calibration_points=CALIBRATION_POINTS,
            chunk=chunk,
            label=model.twin,
            settings=dict(kind="cifar", output=output, seed=seed, span=span, image_seed=image_seed),
        )
        for model in (resnet, plain)
    }


def cifar_twin_line_gradients(
    depth: int,
    twin: str,
    *,
    init: str = "kaiming",
    norm: str = "batch",
    seed: int = 0,
    points: int = CIFAR_POINTS,
    device: torch.device | str = "cpu",
) -> LineGradients:
    """One CIFAR twin at initialisation (any 6n+2 depth, init and norm) along the image line of ``seed``."""
    if twin not in TWINS:
        raise ValueError(f"twin must be one of {list(TWINS)}, got {twin!r}")
    resnet, plain = build_twins(CIFAR_ARCH, seed=seed, depth=depth, init=init, norm=norm, num_classes=8)
    model = (resnet if twin == "resnet" else plain).requires_grad_(False).to(device)  # gradients of the input only
    x0, label = example_image(0)
    x0, v, t = image_line(x0, seed=seed, points=points)
    result = line_gradients(
        model,
        x0.to(device),
        v.to(device),
        t.to(device),
        output=label,
        batch_stats=True,
        calibration_points=CALIBRATION_POINTS,
        chunk=points,
        label=twin,
        copy_model=False,
    )
    return LineGradients(
        **{
            **result.__dict__,
            "settings": dict(kind="cifar", depth=depth, init=init, norm=norm, seed=seed, output=label),
        }
    )


@dataclass(frozen=True)
class ShatterSweep:
    """The summary number (lag-1 autocorrelation of df/dt) of both twins at each depth."""

    depths: list[int]
    lag1: dict[str, list[float]]
    kind: str  # "fc" (the paper's nets) or "cifar"


Measure = Callable[[int, str], float]  # (depth, twin) -> the summary number


def shatter_sweep(
    depths: Sequence[int], measure: Measure, *, kind: str, progress: Callable[[int, int], None] | None = None
) -> ShatterSweep:
    """``measure(depth, twin)`` for both twins at every depth; ``progress(done, total)`` after each."""
    depths = list(depths)
    lag1: dict[str, list[float]] = {twin: [] for twin in TWINS}
    total = len(depths) * len(TWINS)
    for i, depth in enumerate(depths):
        for j, twin in enumerate(TWINS):
            lag1[twin].append(float(measure(depth, twin)))
            if progress:
                progress(i * len(TWINS) + j + 1, total)
    return ShatterSweep(depths=depths, lag1=lag1, kind=kind)


def fc_sweep(
    depths: Sequence[int] = FC_SWEEP_DEPTHS,
    *,
    norm: str = "batch",
    seeds: Sequence[int] = (0,),
    progress: Callable[[int, int], None] | None = None,
) -> ShatterSweep:
    """The paper's fully connected nets across depth; each point is the mean lag-1 number over ``seeds``."""

    def measure(depth: int, twin: str) -> float:
        return float(np.mean([fc_line_gradients(depth, twin == "resnet", norm=norm, seed=s).lag1 for s in seeds]))

    return shatter_sweep(depths, measure, kind="fc", progress=progress)


def cifar_sweep(
    depths: Sequence[int] = CIFAR_SWEEP_DEPTHS,
    *,
    init: str = "kaiming",
    norm: str = "batch",
    seed: int = 0,
    points: int = CIFAR_POINTS,
    progress: Callable[[int, int], None] | None = None,
    measure: Measure | None = None,
) -> ShatterSweep:
    """The CIFAR twins at initialisation across depth (``measure`` lets a caller cache each twin)."""
    measure = measure or (
        lambda depth, twin: cifar_twin_line_gradients(depth, twin, init=init, norm=norm, seed=seed, points=points).lag1
    )
    return shatter_sweep(depths, measure, kind="cifar", progress=progress)


@dataclass(frozen=True)
class DecayFit:
    """Least-squares fits of log(value) against depth L (exponential, value ≈ a·b^L) and against log L
    (power law, value ≈ a·L^(-c)) on the points above ``floor``."""

    depths: list[int]
    rate: float  # b of the exponential fit: the factor per layer
    exponent: float  # c of the power law
    exponential_rms: float  # rms residual of log(value), each fit
    power_rms: float

    @property
    def better(self) -> str:
        """Which form fits better: "exponential" or "power"."""
        return "exponential" if self.exponential_rms < self.power_rms else "power"


def fit_decay(depths: Sequence[int], values: Sequence[float], *, floor: float = 0.1) -> DecayFit:
    """Fit both decay forms to ``values`` against ``depths`` (points at or below ``floor`` are noise, left out)."""
    keep = [(d, v) for d, v in zip(depths, values) if v > floor]
    if len(keep) < 3:
        raise ValueError(f"need at least 3 values above {floor} to fit, got {len(keep)}")
    L = np.array([d for d, _ in keep], dtype=np.float64)
    y = np.log([v for _, v in keep])

    def rms(xs: np.ndarray) -> tuple[float, float]:
        slope, intercept = np.polyfit(xs, y, 1)
        return float(slope), float(np.sqrt(np.mean((y - (slope * xs + intercept)) ** 2)))

    slope_exp, rms_exp = rms(L)
    slope_pow, rms_pow = rms(np.log(L))
    return DecayFit(
        depths=[int(d) for d in L],
        rate=math.exp(slope_exp),
        exponent=-slope_pow,
        exponential_rms=rms_exp,
        power_rms=rms_pow,
    )


def predicted_curves(depths: Sequence[int], anchor: dict[str, float]) -> dict[str, list[float]]:
    """The paper's predicted shapes through the first depth's measured values: plain ∝ 2^-L, ResNet ∝ 1/√L."""
    first = depths[0]
    return {
        "plain": [anchor["plain"] * 2.0 ** -(d - first) for d in depths],
        "resnet": [anchor["resnet"] * math.sqrt(first / d) for d in depths],
    }
