"""Training primitives shared by the bundled models and the training race.

A :class:`Recipe` fixes everything that affects the result: steps, batch size,
optimiser, learning-rate schedule, weight decay and the seed of the batch
order. Twins trained with one recipe see the same batches in the same order.
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Callable, ContextManager, Iterator

import torch
import torch.nn.functional as F
from torch import nn

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "step", "cosine")


@dataclass
class Recipe:
    steps: int = 600
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    schedule: str = "cosine"
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.steps < 1 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("steps and batch_size must be positive and warmup_steps non-negative")

    def lr_at(self, step: int) -> float:
        """Learning rate for ``step`` (0-based): linear warm-up, then the schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        if self.schedule == "step":  # He et al.: divide by 10 at 50% and 75% of training
            return self.lr * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def to_dict(self) -> dict:
        return asdict(self)


def make_optimizer(model: nn.Module, recipe: Recipe, *, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimiser. ``fused``: Adam in one kernel over all parameters on the CPU or CUDA (the
    for-loop version cost a ResNet-56 step at 16 px about 10%); same maths, rounding may differ."""
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        fused = fused and all(p.device.type in ("cpu", "cuda") for p in params)
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def batch_indices(n: int, recipe: Recipe) -> Iterator[torch.Tensor]:
    """Seeded mini-batch indices, reshuffled each epoch; the same for every twin."""
    gen = torch.Generator().manual_seed(recipe.seed)
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(recipe.steps):
        if pos + recipe.batch_size > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos : pos + recipe.batch_size]
        pos += recipe.batch_size


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    *,
    autocast: Callable[[], ContextManager] = nullcontext,
    before_update: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """One optimiser step; returns ``(loss, error)`` on the batch.

    ``before_update`` runs between backward and the update, while the gradients are there to read.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast():
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if before_update is not None:
        before_update()
    optimizer.step()
    error = (logits.detach().argmax(1) != y).float().mean()
    loss_value, error_value = torch.stack([loss.detach(), error]).tolist()  # one device sync, not two
    return loss_value, error_value


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the block (BatchNorm uses and keeps its running statistics), then as it was."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> dict:
    """Loss and error of ``model`` (switched to eval mode and back)."""
    device = next(model.parameters()).device
    loss_sum, wrong = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x, y = images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
            logits = model(x).float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            wrong += int((logits.argmax(1) != y).sum())
    n = max(1, len(images))
    return {"loss": loss_sum / n, "error": wrong / n}
