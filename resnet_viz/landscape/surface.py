"""Loss surfaces: the loss and accuracy over a grid of θ + α·d₁ + β·d₂, and how convex they are.

Every grid point is one forward pass over the batch (see :mod:`.evaluate`). The points are independent:
:func:`loss_surface` takes a ``shard`` so that processes can split a grid
(:func:`~resnet_viz.landscape.distributed.gather_surface` sums their shares).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..models import TWINS
from .directions import Directions, random_directions
from .evaluate import (
    Evaluator,
    GroupEvaluator,
    LandscapeCancelled,
    Progress,
    cancelled,
    check_batch,
    check_grid,
    points_per_pass,
)
from .json_arrays import from_json, rounded, to_json

# A grid point is non-convex when the smallest eigenvalue of its 2x2 Hessian (central differences) is below
# -NONCONVEX_TOL times the largest eigenvalue's magnitude: negative curvature that is not rounding noise.
NONCONVEX_TOL = 0.05


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
        return {
            "alphas": to_json(self.alphas),
            "betas": to_json(self.betas),
            "loss": to_json(self.loss),
            "accuracy": to_json(self.accuracy),
            "span": self.span,
            "seed": self.seed,
            "n_images": self.n_images,
            "twin": self.twin,
            "kind": self.kind,
            "meta": self.meta,
            "nonconvex_share": rounded(self.nonconvex_share),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Surface":
        try:
            alphas, betas = from_json(d["alphas"]), from_json(d["betas"])
            loss, acc = from_json(d["loss"]), from_json(d["accuracy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a loss surface: {exc}") from None
        if loss.shape != (len(alphas), len(betas)) or acc.shape != loss.shape or len(alphas) < 3:
            raise ValueError(f"not a loss surface: grid {loss.shape} does not match {len(alphas)} x {len(betas)}")
        return cls(
            alphas,
            betas,
            loss,
            acc,
            None,
            float(d.get("span", 1.0)),
            d.get("seed"),
            int(d.get("n_images", 0)),
            str(d.get("twin", "")),
            str(d.get("kind", "random")),
            dict(d.get("meta") or {}),
        )


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


def loss_surface(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    span: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    directions: tuple[Directions, Directions] | None = None,
    progress: Progress | None = None,
    cancel=None,
    shard: tuple[int, int] | None = None,
    points: int | None = None,
) -> Surface:
    """Cross-entropy loss and accuracy of ``model`` on ``(x, y)`` over a ``steps x steps`` grid in [-span, span]².

    ``points``: grid points evaluated in one forward pass, as members of one fused group (default: what
    :func:`~resnet_viz.landscape.evaluate.points_per_pass` chooses for the device; 1 is one model at a time).

    ``directions`` defaults to :func:`random_directions` ``(model, seed)``. ``progress(done, total)`` is
    called after each grid point; ``cancel`` (a ``threading.Event`` or a callable) stops the work with
    :class:`LandscapeCancelled`. ``shard=(rank, world)`` computes only the points ``k`` (row-major) with
    ``k % world == rank`` and leaves the others NaN (see :func:`gather_surface`). ``model`` is left
    exactly as it was.
    """
    check_grid(steps, span)
    check_batch(x, y)
    if directions is None:
        directions = random_directions(model, seed)
    device = next(model.parameters()).device
    points = points or points_per_pass(model, device)
    ev: Evaluator | GroupEvaluator = (
        Evaluator(model, directions) if points == 1 else GroupEvaluator(model, directions, points)
    )
    x, y = x.to(ev.device), y.to(ev.device)
    grid = np.linspace(-span, span, steps)
    loss = np.full((steps, steps), np.nan)
    acc = np.full((steps, steps), np.nan)
    rank, world = shard or (0, 1)
    todo = [k for k in range(steps * steps) if k % world == rank]
    for start in range(0, len(todo), points):
        if cancelled(cancel):
            raise LandscapeCancelled("the loss surface was stopped")
        batch = [divmod(k, steps) for k in todo[start : start + points]]
        if isinstance(ev, Evaluator):  # points == 1
            ev.set(float(grid[batch[0][0]]), float(grid[batch[0][1]]))
            values = [ev.evaluate(x, y)]
        else:
            ev.set([float(grid[i]) for i, _ in batch], [float(grid[j]) for _, j in batch])
            values = ev.evaluate(x, y)
        for (i, j), (point_loss, point_acc) in zip(batch, values):
            loss[i, j], acc[i, j] = point_loss, point_acc
        if progress is not None:
            progress(min(start + points, len(todo)), len(todo))
    return Surface(
        grid.copy(),
        grid.copy(),
        loss,
        acc,
        directions,
        float(span),
        seed,
        len(x),
        getattr(model, "twin", ""),
        "random",
        {},
    )


def twin_surfaces(
    resnet: nn.Module,
    plain: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    span: float = 1.0,
    steps: int = 21,
    seed: int = 0,
    progress: Progress | None = None,
    cancel=None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Surface]:
    """Both twins' surfaces with the same seed: the same random draw on every parameter they share."""
    out = {}
    for n, model in enumerate((resnet, plain)):
        step = None if progress is None else (lambda d, t, n=n: progress(n * t + d, 2 * t))
        out[TWINS[n]] = loss_surface(
            model, x, y, span=span, steps=steps, seed=seed, progress=step, cancel=cancel, shard=shard
        )
        out[TWINS[n]].twin = TWINS[n]
    return out
