"""Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

The loss of a trained network at θ + α·d₁ + β·d₂ over a grid of α, β, where d₁ and
d₂ are random Gaussian directions, **filter-normalised**: each output filter of a
convolution (each row of the linear layer) is rescaled to the norm of the same filter
of θ, so that a step of 1 changes every filter by as much as the filter itself and
networks with different weight scales can be compared. Biases and BatchNorm
parameters get a zero direction (the paper's "ignore biasbn"); BatchNorm runs in eval
mode with the running statistics.

Every grid point is one forward pass over the batch. The model passed in is never
touched: the grid runs on a private copy (taken under the model's shared lock), so
another thread never sees it half-perturbed, and it keeps its weights, mode and
``.grad``. The points are independent: :func:`loss_surface` takes a ``shard`` so
that processes (``torchrun``, see ``python -m resnet_viz landscape``) can split a
grid and :func:`gather_surface` sums their shares.

The optimiser's path (Li et al. §7) comes from :func:`record_path`: a short
training run on a private copy, with at most ``max_snapshots`` weight snapshots
(float32, about 3.4 MB each for ResNet-56's 849k convolution and linear weights),
their two PCA directions, and the path projected onto them.
"""
from __future__ import annotations

import copy
import functools
import json
import math
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .locks import model_lock
from .models import TWINS

ASSETS_DIR = Path(__file__).parent / "assets" / "landscapes"
FORMAT = "resnet_viz.landscape/1"
# A grid point is non-convex when the smallest eigenvalue of its 2x2 Hessian (central differences) is below
# -NONCONVEX_TOL times the largest eigenvalue's magnitude: negative curvature that is not rounding noise.
NONCONVEX_TOL = 0.05
MAX_STEPS = 101
MAX_SNAPSHOTS = 40
EVAL_CHUNK = 256
MAX_IMAGES = 2048

Directions = dict[str, torch.Tensor]
Progress = Callable[[int, int], None]


class LandscapeCancelled(Exception):
    """Raised inside :func:`loss_surface` and :func:`record_path` when ``cancel`` is set."""


def _cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


# --- directions -------------------------------------------------------------------------------------------

def perturbed(name: str, param: torch.Tensor) -> bool:
    """Whether a parameter gets a direction: convolution and linear weights yes, biases and norms no."""
    return param.dim() > 1


def _gaussian(name: str, shape: torch.Size, seed: int, which: int) -> torch.Tensor:
    # One generator per (seed, direction, parameter name): twins get the same draw on every parameter they
    # share, whatever else either of them has.
    key = (int(seed) * 1_000_003 + which * 7_919 + zlib.crc32(name.encode())) % (2**63 - 1)
    return torch.randn(shape, generator=torch.Generator().manual_seed(key), dtype=torch.float32)


def filter_normalize(direction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``direction`` with each output filter (row) rescaled to the norm of the same filter of ``weight``."""
    d = direction.reshape(direction.shape[0], -1)
    w = weight.detach().to(d).reshape(weight.shape[0], -1)
    scale = w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + 1e-10)
    return (d * scale).reshape(direction.shape)


def random_directions(model: nn.Module, seed: int = 0) -> tuple[Directions, Directions]:
    """Two filter-normalised random directions for ``model`` (zero for biases and normalisation parameters).

    Keys are ``model.named_parameters()`` names; tensors live on the model's device.
    """
    out: tuple[Directions, Directions] = ({}, {})
    with model_lock(model).shared():
        for name, p in model.named_parameters():
            for which in (0, 1):
                if perturbed(name, p):
                    d = filter_normalize(_gaussian(name, p.shape, seed, which), p.detach().float().cpu())
                else:
                    d = torch.zeros(p.shape, dtype=torch.float32)
                out[which][name] = d.to(device=p.device, dtype=p.dtype)
    return out


# --- surfaces ---------------------------------------------------------------------------------------------

@dataclass
class Surface:
    """The loss (and accuracy) of a model at θ + α·d₁ + β·d₂; ``loss[i, j]`` is at ``alphas[i]``, ``betas[j]``.

    ``directions`` is the pair of direction dicts (parameter name -> tensor), so any grid point can be
    recomputed; surfaces read from a file have ``None`` (regenerate them with :func:`random_directions`
    and the recorded ``seed``). ``nonconvex_share`` is the summary number (see :func:`curvature`).
    """

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    directions: tuple[Directions, Directions] | None = None
    span: float = 1.0
    seed: int | None = 0
    n_images: int = 0
    twin: str = ""
    kind: str = "random"  # "random": filter-normalised random directions; "pca": the optimiser path's PCA
    meta: dict = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.alphas)

    @property
    def centre_loss(self) -> float:
        return float(self.loss[len(self.alphas) // 2, len(self.betas) // 2])

    @property
    def centre_accuracy(self) -> float:
        return float(self.accuracy[len(self.alphas) // 2, len(self.betas) // 2])

    @property
    def nonconvex_share(self) -> float:
        """Share of interior grid points whose 2x2 Hessian has a clearly negative eigenvalue.

        "Clearly" means λ_min < -NONCONVEX_TOL · |λ_max| (λ from central differences of the loss on the
        grid). 0 for a bowl, larger for a rugged surface; NaN when the grid has non-finite values only.
        """
        lam_min, lam_max = curvature(self)
        ok = np.isfinite(lam_min) & np.isfinite(lam_max)
        if not ok.any():
            return float("nan")
        return float(np.mean(lam_min[ok] < -NONCONVEX_TOL * np.abs(lam_max[ok])))

    def to_dict(self) -> dict:
        return {"alphas": _floats(self.alphas), "betas": _floats(self.betas), "loss": _floats(self.loss),
                "accuracy": _floats(self.accuracy), "span": self.span, "seed": self.seed,
                "n_images": self.n_images, "twin": self.twin, "kind": self.kind, "meta": self.meta,
                "nonconvex_share": _round(self.nonconvex_share)}

    @classmethod
    def from_dict(cls, d: dict) -> "Surface":
        try:
            alphas, betas = _array(d["alphas"]), _array(d["betas"])
            loss, acc = _array(d["loss"]), _array(d["accuracy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a loss surface: {exc}") from None
        if loss.shape != (len(alphas), len(betas)) or acc.shape != loss.shape or len(alphas) < 3:
            raise ValueError(f"not a loss surface: grid {loss.shape} does not match {len(alphas)} x {len(betas)}")
        return cls(alphas, betas, loss, acc, None, float(d.get("span", 1.0)), d.get("seed"),
                   int(d.get("n_images", 0)), str(d.get("twin", "")), str(d.get("kind", "random")),
                   dict(d.get("meta") or {}))


def _round(v: float, digits: int = 6):
    return None if not math.isfinite(v) else float(f"{v:.{digits}g}")


def _floats(a: np.ndarray):
    return [_floats(row) for row in a] if np.ndim(a) > 1 else [_round(float(v)) for v in a]


def _array(values) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in values] if values and
                    isinstance(values[0], list) else [np.nan if v is None else v for v in values], dtype=np.float64)


def curvature(surface: Surface) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest eigenvalue of the 2x2 Hessian at each interior grid point (central differences)."""
    f = surface.loss
    ha, hb = np.diff(surface.alphas).mean(), np.diff(surface.betas).mean()
    with np.errstate(invalid="ignore", over="ignore"):  # diverged points (inf, NaN) give NaN curvature
        faa = (f[2:, 1:-1] - 2 * f[1:-1, 1:-1] + f[:-2, 1:-1]) / ha**2
        fbb = (f[1:-1, 2:] - 2 * f[1:-1, 1:-1] + f[1:-1, :-2]) / hb**2
        fab = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * ha * hb)
        mean, root = (faa + fbb) / 2, np.sqrt(((faa - fbb) / 2) ** 2 + fab**2)
        return mean - root, mean + root


class _Evaluator:
    """A private copy of a model whose weights are set to θ + α·d₁ + β·d₂ before each forward pass."""

    def __init__(self, model: nn.Module, directions: tuple[Directions, Directions]):
        with model_lock(model).shared():
            self.model = copy.deepcopy(model)
        self.model.eval().requires_grad_(False)
        for p in self.model.parameters():
            p.grad = None
        named = dict(self.model.named_parameters())
        d1, d2 = directions
        unknown = (set(d1) | set(d2)) - set(named)
        if unknown:
            raise ValueError(f"directions name parameters the model does not have: {sorted(unknown)[:3]}")
        self.params, self.theta, self.d1, self.d2 = [], [], [], []
        for name, p in named.items():
            a, b = d1.get(name), d2.get(name)
            if a is None and b is None:
                continue
            if (a is not None and a.shape != p.shape) or (b is not None and b.shape != p.shape):
                raise ValueError(f"direction for {name} has the wrong shape")
            zero = torch.zeros_like(p)
            a = zero if a is None else a.to(p)
            b = zero if b is None else b.to(p)
            if not (a.any() or b.any()):
                continue
            self.params.append(p)
            self.theta.append(p.detach().clone())
            self.d1.append(a)
            self.d2.append(b)
        self.device = next(self.model.parameters()).device

    @torch.no_grad()
    def set(self, alpha: float, beta: float) -> None:
        # Multi-tensor ops: three kernel launches in all instead of two per tensor, which on a GPU cost
        # as much as the forward pass itself (H200, shapes-20: a grid point took 2x a bare forward).
        torch._foreach_copy_(self.params, self.theta)
        torch._foreach_add_(self.params, self.d1, alpha=alpha)
        torch._foreach_add_(self.params, self.d2, alpha=beta)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        return _evaluate(self.model, x, y)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, one forward pass per chunk of EVAL_CHUNK images."""
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), EVAL_CHUNK):
        logits = model(x[i:i + EVAL_CHUNK]).float()
        yy = y[i:i + EVAL_CHUNK]
        loss_sum += float(F.cross_entropy(logits, yy, reduction="sum"))
        correct += int((logits.argmax(1) == yy).sum())
    return loss_sum / len(x), correct / len(x)


def _check_grid(steps: int, span: float) -> None:
    if not isinstance(steps, int) or not 3 <= steps <= MAX_STEPS or steps % 2 == 0:
        raise ValueError(f"steps must be an odd integer from 3 to {MAX_STEPS} (the centre is a grid point), "
                         f"got {steps!r}")
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number, got {span!r}")


def _check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError("need images N x C x H x W and N labels, N > 0")


def loss_surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, span: float = 1.0, steps: int = 21,
                 seed: int = 0, directions: tuple[Directions, Directions] | None = None,
                 progress: Progress | None = None, cancel=None,
                 shard: tuple[int, int] | None = None) -> Surface:
    """Cross-entropy loss and accuracy of ``model`` on ``(x, y)`` over a ``steps x steps`` grid in [-span, span]².

    ``directions`` defaults to :func:`random_directions` ``(model, seed)``. ``progress(done, total)`` is
    called after each grid point; ``cancel`` (a ``threading.Event`` or a callable) stops the work with
    :class:`LandscapeCancelled`. ``shard=(rank, world)`` computes only the points ``k`` (row-major) with
    ``k % world == rank`` and leaves the others NaN (see :func:`gather_surface`). ``model`` is left
    exactly as it was.
    """
    _check_grid(steps, span)
    _check_batch(x, y)
    if directions is None:
        directions = random_directions(model, seed)
    ev = _Evaluator(model, directions)
    x, y = x.to(ev.device), y.to(ev.device)
    grid = np.linspace(-span, span, steps)
    loss = np.full((steps, steps), np.nan)
    acc = np.full((steps, steps), np.nan)
    rank, world = shard or (0, 1)
    todo = [k for k in range(steps * steps) if k % world == rank]
    for n, k in enumerate(todo):
        if _cancelled(cancel):
            raise LandscapeCancelled("the loss surface was stopped")
        i, j = divmod(k, steps)
        ev.set(float(grid[i]), float(grid[j]))
        loss[i, j], acc[i, j] = ev.evaluate(x, y)
        if progress is not None:
            progress(n + 1, len(todo))
    return Surface(grid.copy(), grid.copy(), loss, acc, directions, float(span), seed, len(x),
                   getattr(model, "twin", ""), "random", {})


def gather_surface(surface: Surface) -> Surface:
    """Combine the shards of a grid computed by the processes of a ``torch.distributed`` group (on every rank)."""
    import torch.distributed as dist

    data = torch.from_numpy(np.stack([surface.loss, surface.accuracy])).to(torch.float64)
    done = torch.from_numpy(~np.isnan(surface.loss)).to(torch.float64)
    if dist.get_backend() == "nccl":
        data, done = data.cuda(), done.cuda()
    data = torch.nan_to_num(data, nan=0.0)
    dist.all_reduce(data)
    dist.all_reduce(done)
    data, done = data.cpu().numpy(), done.cpu().numpy()
    # Points that diverged (NaN or inf on their rank) come back as NaN / inf; exactly one rank computed each.
    if not np.all(done == 1):
        raise RuntimeError("the shards do not cover the grid exactly once")
    return Surface(surface.alphas, surface.betas, data[0], data[1], surface.directions, surface.span,
                   surface.seed, surface.n_images, surface.twin, surface.kind, surface.meta)


def twin_surfaces(resnet: nn.Module, plain: nn.Module, x: torch.Tensor, y: torch.Tensor, *, span: float = 1.0,
                  steps: int = 21, seed: int = 0, progress: Progress | None = None, cancel=None,
                  shard: tuple[int, int] | None = None) -> dict[str, Surface]:
    """Both twins' surfaces with the same seed: the same random draw on every parameter they share."""
    out = {}
    for n, model in enumerate((resnet, plain)):
        step = None if progress is None else (lambda d, t, n=n: progress(n * t + d, 2 * t))
        out[TWINS[n]] = loss_surface(model, x, y, span=span, steps=steps, seed=seed, progress=step,
                                     cancel=cancel, shard=shard)
        out[TWINS[n]].twin = TWINS[n]
    return out


# --- 1-D slices -------------------------------------------------------------------------------------------

@dataclass
class Line:
    """Loss along a line: ``t`` (steps along ``direction``), ``loss`` and ``accuracy``.

    ``kind`` is "random" (θ + t·d, d filter-normalised) or "interpolation" (θ₀ + t·(θ − θ₀): t = 0 is the
    initial network, t = 1 the trained one; Goodfellow et al. 2015).
    """

    t: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    kind: str = "random"
    twin: str = ""

    def to_dict(self) -> dict:
        return {"t": _floats(self.t), "loss": _floats(self.loss), "accuracy": _floats(self.accuracy),
                "kind": self.kind, "twin": self.twin}

    @classmethod
    def from_dict(cls, d: dict) -> "Line":
        try:
            t, loss, acc = _array(d["t"]), _array(d["loss"]), _array(d["accuracy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a loss line: {exc}") from None
        if not (t.ndim == 1 and t.shape == loss.shape == acc.shape):
            raise ValueError("not a loss line: t, loss and accuracy differ in length")
        return cls(t, loss, acc, str(d.get("kind", "random")), str(d.get("twin", "")))


def loss_line(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, span: float = 1.0, steps: int = 41,
              seed: int = 0, direction: Directions | None = None, init: nn.Module | dict | None = None,
              progress: Progress | None = None, cancel=None) -> Line:
    """The loss along one filter-normalised random direction through θ (t in [-span, span]).

    With ``init`` (the initial network or its state dict) it is the straight line from the initial to
    the trained weights instead: all floating-point state (weights and BatchNorm running statistics)
    interpolated, t from -span/4 to 1 + span/4 (BatchNorm's running statistics are held at their end
    values outside [0, 1]).
    """
    _check_grid(steps, span)
    _check_batch(x, y)
    if init is None:
        d = direction if direction is not None else random_directions(model, seed)[0]
        surf = _line_points(model, d, np.linspace(-span, span, steps), x, y, progress, cancel)
        return Line(*surf, kind="random", twin=getattr(model, "twin", ""))
    init_state = init.state_dict() if isinstance(init, nn.Module) else dict(init)
    with model_lock(model).shared():
        net = copy.deepcopy(model)
    net.eval().requires_grad_(False)
    trained = {k: v.detach().clone() for k, v in net.state_dict().items()}
    missing = [k for k, v in trained.items() if v.is_floating_point() and k not in init_state]
    if missing:
        raise ValueError(f"the initial weights lack {missing[:3]}")
    ts = np.linspace(-span / 4, 1 + span / 4, steps)
    loss, acc = np.empty(steps), np.empty(steps)
    device = next(net.parameters()).device
    x, y = x.to(device), y.to(device)
    state = net.state_dict()
    params = {name for name, _ in net.named_parameters()}
    for n, t in enumerate(ts):
        if _cancelled(cancel):
            raise LandscapeCancelled("the line was stopped")
        with torch.no_grad():
            for k, v in trained.items():
                if v.is_floating_point():
                    # BatchNorm statistics stay between their two ends (a variance can't go negative).
                    w = float(t) if k in params else min(1.0, max(0.0, float(t)))
                    state[k].copy_(torch.lerp(init_state[k].to(v), v, w))
        loss[n], acc[n] = _evaluate(net, x, y)
        if progress is not None:
            progress(n + 1, steps)
    return Line(ts, loss, acc, kind="interpolation", twin=getattr(model, "twin", ""))


def _line_points(model, direction, ts, x, y, progress, cancel):
    ev = _Evaluator(model, (direction, {}))
    x, y = x.to(ev.device), y.to(ev.device)
    loss, acc = np.empty(len(ts)), np.empty(len(ts))
    for n, t in enumerate(ts):
        if _cancelled(cancel):
            raise LandscapeCancelled("the line was stopped")
        ev.set(float(t), 0.0)
        loss[n], acc[n] = ev.evaluate(x, y)
        if progress is not None:
            progress(n + 1, len(ts))
    return ts, loss, acc


# --- the optimiser's path (PCA of weight snapshots) -------------------------------------------------------

@dataclass
class OptimizerPath:
    """A training run seen on its loss surface: the PCA plane of its weight snapshots (Li et al. §7).

    ``coords`` (k x 2) is each snapshot's position relative to the final weights, projected onto the two
    PCA directions; ``explained`` the share of the snapshots' variance each direction captures;
    ``surface`` the loss over that plane around the final weights (``kind="pca"``).
    """

    steps: list[int]
    coords: np.ndarray
    explained: tuple[float, float]
    train_loss: list[float]
    surface: Surface | None = None
    directions: tuple[Directions, Directions] | None = None
    recipe: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "coords": _floats(self.coords), "explained": [_round(v) for v in self.explained],
                "train_loss": [_round(v) for v in self.train_loss], "recipe": self.recipe,
                "surface": self.surface.to_dict() if self.surface is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> "OptimizerPath":
        try:
            coords = _array(d["coords"])
            if coords.ndim != 2 or coords.shape[1] != 2:
                raise ValueError("coords must be k x 2")
            surface = Surface.from_dict(d["surface"]) if d.get("surface") else None
            return cls([int(s) for s in d["steps"]], coords, tuple(float(v) for v in d["explained"]),
                       [float("nan") if v is None else float(v) for v in d.get("train_loss", [])], surface,
                       None, dict(d.get("recipe") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an optimiser path: {exc}") from None


def snapshot_bytes(model: nn.Module) -> int:
    """Memory one snapshot of :func:`record_path` takes (float32 copies of the perturbed weights)."""
    return 4 * sum(p.numel() for name, p in model.named_parameters() if perturbed(name, p))


def record_path(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int = 150, batch_size: int = 32,
                optimizer: str = "adam", lr: float = 2e-3, max_snapshots: int = 25, seed: int = 0,
                progress: Progress | None = None, cancel=None) -> OptimizerPath:
    """Train a private copy of ``model`` (from its current weights) and record its path.

    Adam (or SGD with momentum 0.9), weight decay 5e-4, a cosine learning rate with a 10% warm-up, batches
    drawn from ``(x, y)`` with ``seed``. At most ``max_snapshots`` snapshots of the convolution and linear
    weights are kept (``snapshot_bytes(model)`` each). The PCA directions are unit vectors over those
    weights (zero for biases and norms, as for random directions); ``coords`` are in those units.
    """
    from .training import Recipe, batch_indices, make_optimizer, train_step

    if not 2 <= max_snapshots <= MAX_SNAPSHOTS:
        raise ValueError(f"max_snapshots must be from 2 to {MAX_SNAPSHOTS}")
    if steps < 2:
        raise ValueError("steps must be at least 2")
    _check_batch(x, y)
    recipe = Recipe(steps=steps, batch_size=min(batch_size, len(x)), optimizer=optimizer, lr=lr, weight_decay=5e-4,
                    warmup_steps=max(1, steps // 10), schedule="cosine", seed=seed)
    with model_lock(model).shared():
        net = copy.deepcopy(model)
    net.train().requires_grad_(True)
    device = next(net.parameters()).device
    names = [name for name, p in net.named_parameters() if perturbed(name, p)]
    params = dict(net.named_parameters())
    every = max(1, math.ceil(steps / (max_snapshots - 1)))
    snap_steps = sorted({*range(0, steps, every), steps})
    snaps = torch.empty(len(snap_steps), sum(params[n].numel() for n in names), dtype=torch.float32)

    def take(row: int) -> None:
        with torch.no_grad():
            torch.cat([params[n].detach().reshape(-1).float().cpu() for n in names], out=snaps[row])

    opt = make_optimizer(net, recipe)
    losses, row = [], 0
    if snap_steps[0] == 0:
        take(0)
        row = 1
    for step, idx in enumerate(batch_indices(len(x), recipe)):
        if _cancelled(cancel):
            raise LandscapeCancelled("the training run was stopped")
        loss, _ = train_step(net, opt, x[idx].to(device), y[idx].to(device), recipe.lr_at(step))
        if not math.isfinite(loss):
            raise ValueError(f"training diverged at step {step + 1} (loss {loss}); try a smaller learning rate")
        losses.append(loss)
        if row < len(snap_steps) and snap_steps[row] == step + 1:
            take(row)
            row += 1
        if progress is not None:
            progress(step + 1, steps)
    net.eval().requires_grad_(False)
    for p in net.parameters():
        p.grad = None
    diffs = snaps[:-1] - snaps[-1]  # relative to the final weights
    gram = (diffs.double() @ diffs.double().T)
    evals, evecs = torch.linalg.eigh(gram)
    order = torch.argsort(evals, descending=True)[:2]
    total = float(evals.clamp(min=0).sum()) or 1.0
    vecs = []
    for k in order:
        v = diffs.double().T @ evecs[:, k]
        vecs.append((v / (v.norm() + 1e-30)).float())
    coords = torch.stack([diffs.double() @ v.double() for v in vecs], 1).numpy()
    coords = np.vstack([coords, np.zeros((1, 2))])
    directions: tuple[Directions, Directions] = ({}, {})
    for which, v in enumerate(vecs):
        offset = 0
        for name in names:
            p = params[name]
            directions[which][name] = v[offset:offset + p.numel()].reshape(p.shape).to(p)
            offset += p.numel()
    path = OptimizerPath(snap_steps, coords, (float(evals[order[0]]) / total, float(evals[order[1]]) / total),
                         losses, None, directions, recipe.to_dict())
    path.model = net  # the trained copy, for path_surface
    return path


def path_surface(path: OptimizerPath, x: torch.Tensor, y: torch.Tensor, *, steps: int = 15, margin: float = 1.25,
                 progress: Progress | None = None, cancel=None) -> Surface:
    """The loss over the path's PCA plane around its final weights (a square that holds the whole path)."""
    model = getattr(path, "model", None)
    if model is None or path.directions is None:
        raise ValueError("this path has no model attached; record it with record_path")
    span = float(margin * np.abs(path.coords).max()) or 1.0
    surf = loss_surface(model, x, y, span=span, steps=steps, directions=path.directions, progress=progress,
                        cancel=cancel)
    surf.kind, surf.seed, surf.twin = "pca", None, getattr(model, "twin", "")
    path.surface = surf
    return surf


# --- the bundled twins: initial weights, data, shipped surfaces -------------------------------------------

def landscape_batch(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of the bundled twins' training set (shapes, seed 1), with labels."""
    x, y = _landscape_batch(n)
    return x.clone(), y.clone()


@functools.lru_cache(maxsize=4)
def _landscape_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from .bundled import TRAIN_SIZE
    from .data import TRAIN_SEED, make_shapes

    if not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"n must be from 1 to {MAX_IMAGES}")
    x, y, _ = make_shapes(TRAIN_SIZE, seed=TRAIN_SEED)  # the set is generated whole (about 2 s), then cut
    return x[:n].clone(), y[:n].clone()


def initial_twins(info: dict):
    """The initial weights of twins whose ``info`` records how they were built (``build`` with its seed)."""
    from .models import build_twins

    build = info.get("build") if isinstance(info, dict) else None
    if not isinstance(build, dict) or "seed" not in build:
        raise ValueError("these twins do not record how their initial weights were built")
    build = {k: v for k, v in build.items() if k != "weights"}
    return build_twins(**build)


def write_landscape_file(path: str | Path, surfaces: dict[str, Surface], *, name: str = "",
                         paths: dict[str, OptimizerPath] | None = None, lines: dict[str, Line] | None = None,
                         extra: dict | None = None) -> Path:
    doc = {"format": FORMAT, "name": name, "surfaces": {k: s.to_dict() for k, s in surfaces.items()},
           "paths": {k: p.to_dict() for k, p in (paths or {}).items()},
           "lines": {k: v.to_dict() for k, v in (lines or {}).items()}, **(extra or {})}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    return path


def read_landscape_file(path_or_text: str | Path | bytes) -> dict:
    """``{"surfaces": {twin: Surface}, "paths": {twin: OptimizerPath}, "lines": {twin: Line}, ...}``."""
    try:
        text = path_or_text.decode() if isinstance(path_or_text, bytes) else (
            Path(path_or_text).read_text() if not str(path_or_text).lstrip().startswith("{") else str(path_or_text))
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a landscape file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a landscape file (expected format {FORMAT!r})")
    surfaces = {k: Surface.from_dict(v) for k, v in (doc.get("surfaces") or {}).items()}
    paths = {k: OptimizerPath.from_dict(v) for k, v in (doc.get("paths") or {}).items()}
    lines = {k: Line.from_dict(v) for k, v in (doc.get("lines") or {}).items()}
    return {**doc, "surfaces": surfaces, "paths": paths, "lines": lines}


def _bundled_file(name: str) -> Path:
    path = ASSETS_DIR / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in ASSETS_DIR.glob("*.json"))
        raise ValueError(f"no precomputed landscape for {name!r}; available: {available}")
    return path


def precomputed_surfaces(name: str) -> dict[str, Surface]:
    """The shipped surfaces of a bundled pair: ``{"resnet": Surface, "plain": Surface}``."""
    return read_landscape_file(_bundled_file(name))["surfaces"]


def precomputed_paths(name: str) -> dict[str, OptimizerPath]:
    """The shipped optimiser paths of a bundled pair (short runs from the recorded initial weights)."""
    return read_landscape_file(_bundled_file(name))["paths"]


def precomputed_lines(name: str) -> dict[str, Line]:
    """The shipped straight lines from each twin's initial to its trained weights."""
    return read_landscape_file(_bundled_file(name))["lines"]


def precomputed_info(name: str) -> dict:
    """The shipped file's settings (grid, span, seed, images, timing) without the arrays."""
    doc = read_landscape_file(_bundled_file(name))
    return {k: v for k, v in doc.items() if k not in ("surfaces", "paths", "lines")}


# --- command line: python -m resnet_viz landscape ---------------------------------------------------------

def add_cli_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundled", metavar="NAME", help="a bundled pair (shapes-20, shapes-56)")
    src.add_argument("--checkpoint", metavar="FILE", help="twins or a ResNet state dict that load_checkpoint accepts "
                                                          "(8 shapes classes at 32x32: evaluated on shapes)")
    parser.add_argument("--steps", type=int, default=21, help="grid points per axis, odd (default 21)")
    parser.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span]^2 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    parser.add_argument("--images", type=int, default=128, help="training images per grid point (default 128)")
    parser.add_argument("--twins", nargs="+", choices=list(TWINS), default=list(TWINS))
    parser.add_argument("--path", action="store_true",
                        help="also record the optimiser's path: a short run from the twins' initial weights "
                             "(bundled twins) or from the checkpoint, with its PCA plane")
    parser.add_argument("--path-steps", type=int, default=150, help="training steps of the path run (default 150)")
    parser.add_argument("--path-optimizer", choices=["adam", "sgd"], default="adam",
                        help="optimiser of the path run (default adam, lr 2e-3; sgd: lr 0.05, momentum 0.9)")
    parser.add_argument("--path-lr", type=float, help="learning rate of the path run")
    parser.add_argument("--path-grid", type=int, default=15, help="grid points per axis on the PCA plane")
    parser.add_argument("--snapshots", type=int, default=25, help="weight snapshots kept for the PCA (default 25)")
    parser.add_argument("--no-line", action="store_true",
                        help="skip the straight line from the initial to the trained weights (computed when the "
                             "twins record their initial weights)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ... (under torchrun: cuda:<local rank>)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    parser.add_argument("--out", required=True, help="where to write the JSON file")


def _cli_models(args):
    from .bundled import load_bundled
    from .checkpoints import load_checkpoint
    from .data import SHAPE_CLASSES

    if args.bundled:
        return load_bundled(args.bundled, device=args.device)
    resnet, plain, info = load_checkpoint(args.checkpoint, device=args.device)
    if resnet.fc.out_features != len(SHAPE_CLASSES) or resnet.conv1.in_channels != 3 or \
            int(resnet.preprocess.get("size", 0)) != 32:
        raise ValueError(f"this checkpoint has {resnet.fc.out_features} classes at "
                         f"{resnet.preprocess.get('size')} px; the landscape is evaluated on the shapes data set, "
                         f"which needs 8 classes at 32x32. Use the library with your own images and labels.")
    return resnet, plain, info


def cli(args) -> int:
    """``python -m resnet_viz landscape``; under ``torchrun`` the grid is split across the processes."""
    import os
    import sys
    import time

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        if backend == "nccl":
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(args.device)
        dist.init_process_group(backend)
    if args.threads:
        torch.set_num_threads(args.threads)

    def say(msg: str) -> None:
        if rank == 0:
            print(msg, file=sys.stderr, flush=True)

    try:
        try:
            _check_grid(args.steps, args.span)
            if args.path:
                _check_grid(args.path_grid, 1.0)
            resnet, plain, info = _cli_models(args)
            x, y = landscape_batch(args.images)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        x, y = x.to(args.device), y.to(args.device)
        models = {"resnet": resnet, "plain": plain}
        surfaces, paths, seconds = {}, {}, {}
        for twin in args.twins:
            start = time.perf_counter()
            bar = _TextBar(f"{twin} surface", rank == 0)
            surf = loss_surface(models[twin], x, y, span=args.span, steps=args.steps, seed=args.seed,
                                progress=bar, shard=(rank, world) if world > 1 else None)
            bar.close()
            if world > 1:
                surf = gather_surface(surf)
            surf.twin = twin
            surfaces[twin] = surf
            seconds[f"{twin}_surface"] = round(time.perf_counter() - start, 1)
            say(f"{twin}: loss at the centre {surf.centre_loss:.4g}, non-convex share {surf.nonconvex_share:.2f} "
                f"({seconds[f'{twin}_surface']} s)")
        try:
            inits = dict(zip(TWINS, initial_twins(info)))
        except ValueError:
            inits = None
        lines = {}
        if inits is not None and rank == 0 and not args.no_line:
            for twin in args.twins:
                start = time.perf_counter()
                lines[twin] = loss_line(models[twin], x, y, init=inits[twin].to(args.device), steps=41)
                seconds[f"{twin}_line"] = round(time.perf_counter() - start, 1)
        if args.path:
            starts, origin = (inits, "the recorded initial weights") if inits else (models, "the checkpoint's weights")
            # The run trains on the same images the surfaces are measured on: its path ends in their minimum.
            lr = args.path_lr or (2e-3 if args.path_optimizer == "adam" else 0.05)
            for twin in args.twins:
                start = time.perf_counter()
                model = starts[twin].to(args.device)
                # Every rank trains the same copy (same seed, same batches); rank 0's directions are sent to all.
                bar = _TextBar(f"{twin} path", rank == 0)
                path = record_path(model, x, y, steps=args.path_steps, optimizer=args.path_optimizer, lr=lr,
                                   max_snapshots=args.snapshots, progress=bar)
                bar.close()
                if world > 1:
                    _broadcast_path(path)
                bar = _TextBar(f"{twin} PCA plane", rank == 0)
                span = float(1.25 * np.abs(path.coords).max()) or 1.0
                surf = loss_surface(path.model, x, y, span=span, steps=args.path_grid, directions=path.directions,
                                    progress=bar, shard=(rank, world) if world > 1 else None)
                bar.close()
                if world > 1:
                    surf = gather_surface(surf)
                surf.kind, surf.seed, surf.twin = "pca", None, twin
                path.surface = surf
                path.recipe = {**path.recipe, "start": origin, "train_images": len(x)}
                paths[twin] = path
                seconds[f"{twin}_path"] = round(time.perf_counter() - start, 1)
                say(f"{twin} path: {len(path.steps)} snapshots, PCA explains {path.explained[0]:.0%} + "
                    f"{path.explained[1]:.0%} ({seconds[f'{twin}_path']} s)")
        if rank == 0:
            name = args.bundled or Path(args.checkpoint).name
            extra = {"steps": args.steps, "span": args.span, "seed": args.seed, "images": args.images,
                     "data": f"shapes training set (seed 1), first {args.images} images",
                     "batchnorm": "eval (running statistics)", "directions": "filter-normalised Gaussian, "
                     "zero for biases and BatchNorm parameters", "nonconvex_tol": NONCONVEX_TOL,
                     "seconds": seconds, "processes": world, "threads": torch.get_num_threads(),
                     "device": str(args.device), "torch": torch.__version__}
            write_landscape_file(args.out, surfaces, name=name, paths=paths, lines=lines, extra=extra)
            say(f"wrote {args.out}")
        return 0
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _broadcast_path(path: OptimizerPath) -> None:
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    for which in (0, 1):
        for name, d in path.directions[which].items():
            buf = d.detach().to(device).contiguous()
            dist.broadcast(buf, 0)
            path.directions[which][name] = buf.to(d.device)
    with torch.no_grad():
        for value in path.model.state_dict().values():
            buf = value.detach().to(device).contiguous()
            dist.broadcast(buf, 0)
            value.copy_(buf)
    coords = torch.from_numpy(np.ascontiguousarray(path.coords)).to(device)
    dist.broadcast(coords, 0)
    path.coords = coords.cpu().numpy()


class _TextBar:
    def __init__(self, label: str, show: bool, width: int = 30):
        self.label, self.show, self.width = label, show, width

    def __call__(self, done: int, total: int) -> None:
        if self.show:
            import sys

            n = int(self.width * done / max(1, total))
            sys.stderr.write(f"\r{self.label}: [{'#' * n}{'.' * (self.width - n)}] {done}/{total}   ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.show:
            import sys

            sys.stderr.write("\n")
