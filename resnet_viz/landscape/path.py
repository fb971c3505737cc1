"""The optimiser's path (Li et al. §7): a short training run seen on the PCA plane of its weight snapshots.

:func:`record_path` trains a private copy with at most ``max_snapshots`` weight snapshots (float32, about
3.4 MB each for ResNet-56's 849k convolution and linear weights), takes their two PCA directions and projects
the path onto them; :func:`path_surface` measures the loss over that plane around the final weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..locks import model_lock
from .directions import Directions, perturbed
from .evaluate import LandscapeCancelled, Progress, cancelled, check_batch
from .json_arrays import from_json, rounded, to_json
from .surface import Surface, loss_surface

MAX_SNAPSHOTS = 40


@dataclass
class OptimizerPath:
    """A training run seen on its loss surface: the PCA plane of its weight snapshots (Li et al. §7).

    ``coords`` (k x 2) is each snapshot's position relative to the final weights, projected onto the two
    PCA directions; ``explained`` the share of the snapshots' variance each direction captures;
    ``surface`` the loss over that plane around the final weights (``kind="pca"``). ``trained`` is the
    trained copy that :func:`path_surface` measures the plane around (None for a path read from a file).
    """

    steps: list[int]
    coords: np.ndarray
    explained: tuple[float, float]
    train_loss: list[float]
    surface: Surface | None = None
    directions: tuple[Directions, Directions] | None = None
    recipe: dict = field(default_factory=dict)
    trained: nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "coords": to_json(self.coords),
            "explained": [rounded(v) for v in self.explained],
            "train_loss": [rounded(v) for v in self.train_loss],
            "recipe": self.recipe,
            "surface": self.surface.to_dict() if self.surface is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "OptimizerPath":
        try:
            coords = from_json(d["coords"])
            if coords.ndim != 2 or coords.shape[1] != 2:
                raise ValueError("coords must be k x 2")
            surface = Surface.from_dict(d["surface"]) if d.get("surface") else None
            return cls(
                [int(s) for s in d["steps"]],
                coords,
                _pair(d["explained"]),
                [float("nan") if v is None else float(v) for v in d.get("train_loss", [])],
                surface,
                None,
                dict(d.get("recipe") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an optimiser path: {exc}") from None


def _pair(values) -> tuple[float, float]:
    """The variance the two PCA directions explain, as two floats."""
    first, second = (float(v) for v in values)  # a ValueError unless exactly two
    return first, second


def snapshot_bytes(model: nn.Module) -> int:
    """Memory one snapshot of :func:`record_path` takes (float32 copies of the perturbed weights)."""
    return 4 * sum(p.numel() for name, p in model.named_parameters() if perturbed(name, p))


def record_path(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 150,
    batch_size: int = 32,
    optimizer: str = "adam",
    lr: float = 2e-3,
    max_snapshots: int = 25,
    seed: int = 0,
    progress: Progress | None = None,
    cancel=None,
) -> OptimizerPath:
    """Train a private copy of ``model`` (from its current weights) and record its path.

    Adam (or SGD with momentum 0.9), weight decay 5e-4, a cosine learning rate with a 10% warm-up, batches
    drawn from ``(x, y)`` with ``seed``. At most ``max_snapshots`` snapshots of the convolution and linear
    weights are kept (``snapshot_bytes(model)`` each). The PCA directions are unit vectors over those
    weights (zero for biases and norms, as for random directions); ``coords`` are in those units.
    """
    from ..training import Recipe, batch_indices, make_optimizer, train_step

    if not 2 <= max_snapshots <= MAX_SNAPSHOTS:
        raise ValueError(f"max_snapshots must be from 2 to {MAX_SNAPSHOTS}")
    if steps < 2:
        raise ValueError("steps must be at least 2")
    check_batch(x, y)
    recipe = Recipe(
        steps=steps,
        batch_size=min(batch_size, len(x)),
        optimizer=optimizer,
        lr=lr,
        weight_decay=5e-4,
        warmup_steps=max(1, steps // 10),
        schedule="cosine",
        seed=seed,
    )
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
        if cancelled(cancel):
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
    gram = diffs.double() @ diffs.double().T
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
            directions[which][name] = v[offset : offset + p.numel()].reshape(p.shape).to(p)
            offset += p.numel()
    return OptimizerPath(
        snap_steps,
        coords,
        (float(evals[order[0]]) / total, float(evals[order[1]]) / total),
        losses,
        None,
        directions,
        recipe.to_dict(),
        trained=net,
    )


def path_surface(
    path: OptimizerPath,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = 15,
    margin: float = 1.25,
    progress: Progress | None = None,
    cancel=None,
    shard: tuple[int, int] | None = None,
) -> Surface:
    """The loss over the path's PCA plane around its final weights (a square that holds the whole path).

    The square's half-side is ``margin`` times the path's largest coordinate. The surface is also kept as
    ``path.surface``. ``progress``, ``cancel`` and ``shard`` are those of :func:`loss_surface`.
    """
    if path.trained is None or path.directions is None:
        raise ValueError(
            "this path has no trained model (paths read from a file have none); record it with record_path"
        )
    span = float(margin * np.abs(path.coords).max()) or 1.0
    surf = loss_surface(
        path.trained,
        x,
        y,
        span=span,
        steps=steps,
        directions=path.directions,
        progress=progress,
        cancel=cancel,
        shard=shard,
    )
    surf.kind, surf.seed, surf.twin = "pca", None, getattr(path.trained, "twin", "")
    path.surface = surf
    return surf
