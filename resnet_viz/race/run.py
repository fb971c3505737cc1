"""One network in a race: its optimiser and metrics, one instrumented training step, its residual ratios."""

from __future__ import annotations

from dataclasses import replace

import torch

from ..gradients import main_path_weights
from ..models import TwinNet
from ..residual import block_contributions
from ..training import Recipe, eval_mode, make_optimizer, train_step
from .config import run_label


class Run:
    """One network in a race, with its metrics. ``history`` rows are appended by the worker only."""

    def __init__(self, model: TwinNet, recipe: Recipe, depth: int, lr: float | None = None):
        self.model = model
        self.arch = model.twin
        self.depth = depth
        self.label = run_label(self.arch, depth)
        self.recipe = recipe if lr is None else replace(recipe, lr=lr)
        self.seed = self.recipe.seed  # initial weights and batch order
        self.optimizer = make_optimizer(model, self.recipe, fused=True)
        self.status = "waiting"  # waiting | running | finished | diverged | stopped
        self.history: list[dict] = []
        self.snapshots: list[dict] = []
        self.train_seconds = 0.0
        self.images = 0
        # Main-path weights (as on Gradient flow) whose gradient norms the snapshots read after backward.
        self.grad_layers: list[tuple[str, torch.Tensor]] = main_path_weights(model)

    def to_dict(self) -> dict:
        return {
            "arch": self.arch,
            "depth": self.depth,
            "label": self.label,
            "seed": self.seed,
            "status": self.status,
            "lr": self.recipe.lr,
            "steps_done": len(self.history),
            "train_seconds": round(self.train_seconds, 2),
            "history": self.history,
            "snapshots": self.snapshots,
        }


def instrumented_step(
    run: Run, x: torch.Tensor, y: torch.Tensor, lr: float, *, want_grads: bool, autocast
) -> tuple[float, float, dict | None]:
    """One optimiser step of ``run``: ``(loss, error, grad_norms or None)``.

    Gradient norms are read between backward and the update, so they cost no extra pass.
    """
    grads: dict[str, float] = {}

    def read_grad_norms() -> None:
        norms = torch.stack(
            [p.grad.detach().float().norm() if p.grad is not None else torch.zeros(()) for _, p in run.grad_layers]
        ).tolist()
        grads.update({name: round(v, 6) for (name, _), v in zip(run.grad_layers, norms)})

    loss, error = train_step(
        run.model, run.optimizer, x, y, lr, autocast=autocast, before_update=read_grad_norms if want_grads else None
    )
    return loss, error, grads if want_grads else None


@torch.no_grad()
def residual_ratios(model: TwinNet, x: torch.Tensor) -> dict[str, float]:
    """Per block ||F(x)|| / ||x|| on a probe batch, as on *Residual vs identity*.

    Eval mode, so BatchNorm's running statistics are used and left untouched.
    """
    with eval_mode(model):
        return {e["name"]: round(e["ratio"], 6) for e in block_contributions(model, x, details=False)}
