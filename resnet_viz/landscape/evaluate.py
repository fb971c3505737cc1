"""Evaluating a model at shifted weights: a private copy moved to θ + α·d₁ + β·d₂, its loss on a batch.

Every landscape (surface, line, path plane) is made of such points. The model passed in is never touched:
the points run on a private copy (taken under the model's shared lock), so another thread never sees it
half-perturbed, and it keeps its weights, mode and ``.grad``. BatchNorm runs in eval mode with the running
statistics. Also here: the checks of a grid and a batch, and Stop (``cancel``) for the long loops.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..locks import model_lock
from .directions import Directions

MAX_STEPS = 101
EVAL_CHUNK = 256

Progress = Callable[[int, int], None]


class LandscapeCancelled(Exception):
    """Raised inside :func:`loss_surface` and :func:`record_path` when ``cancel`` is set."""


def cancelled(cancel) -> bool:
    """Whether ``cancel`` (None, a ``threading.Event`` or a callable) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


class Evaluator:
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
        self.params: list[torch.Tensor] = []
        self.theta: list[torch.Tensor] = []
        self.d1: list[torch.Tensor] = []
        self.d2: list[torch.Tensor] = []
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
        return evaluate(self.model, x, y)


class GroupEvaluator:
    """``points`` private copies of a model as one fused network (:class:`~resnet_viz.fused.FusedGroup`): each
    member is set to its own θ + α·d₁ + β·d₂, and one forward pass evaluates them all on the same batch."""

    def __init__(self, model: nn.Module, directions: tuple[Directions, Directions], points: int):
        from ..fused import FusedGroup
        from ..models import TwinNet

        single = Evaluator(model, directions)  # checks the directions, keeps a private copy
        if not isinstance(single.model, TwinNet):
            raise TypeError(f"only a TwinNet evaluates several points per pass, not a {type(model).__name__}")
        self.points = points
        self.group = FusedGroup([single.model] * points).eval().requires_grad_(False)
        named = dict(single.model.named_parameters())
        by_tensor = {id(p): name for name, p in named.items()}
        stacked = dict(self.group.net.named_parameters())
        self.names = [by_tensor[id(p)] for p in single.params]
        self.views = [self.group.member_view(stacked[n].detach(), n, slice(None)) for n in self.names]
        self.theta, self.d1, self.d2 = single.theta, single.d1, single.d2
        self.device = single.device

    @torch.no_grad()
    def set(self, alphas: list[float], betas: list[float]) -> None:
        """Member k at (alphas[k], betas[k]); members past ``len(alphas)`` repeat the last point."""
        n = self.points
        alphas = list(alphas) + [alphas[-1]] * (n - len(alphas))
        betas = list(betas) + [betas[-1]] * (n - len(betas))
        for view, theta, a, b in zip(self.views, self.theta, self.d1, self.d2):
            shape = (n,) + (1,) * theta.dim()
            al = torch.tensor(alphas, dtype=theta.dtype, device=theta.device).view(shape)
            be = torch.tensor(betas, dtype=theta.dtype, device=theta.device).view(shape)
            view.copy_(theta + al * a + be * b)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
        """Every member's mean cross-entropy and accuracy, one forward pass per chunk of images."""
        loss_sum = torch.zeros(self.points, dtype=torch.float64)
        correct = torch.zeros(self.points, dtype=torch.float64)
        chunk = max(1, EVAL_CHUNK // self.points)
        for i in range(0, len(x), chunk):
            logits = self.group(self.group.stack_inputs(x[i : i + chunk])).float()  # B x N x K
            yy = y[i : i + chunk]
            b, n, k = logits.shape
            losses = F.cross_entropy(logits.reshape(b * n, k), yy.repeat_interleave(n), reduction="none")
            loss_sum += losses.view(b, n).sum(0).double().cpu()
            correct += (logits.argmax(2) == yy[:, None]).sum(0).double().cpu()
        return list(zip((loss_sum / len(x)).tolist(), (correct / len(x)).tolist()))


def points_per_pass(model: nn.Module, device: torch.device) -> int:
    """How many grid points one forward pass evaluates: a fused group of 16 on CUDA (there a single small
    model leaves the GPU waiting on kernel launches); one on the CPU, where grouped convolutions gained
    nothing measurable for training (docs/training-race.md)."""
    from ..fused import can_fuse
    from ..models import TwinNet

    if device.type != "cuda" or not isinstance(model, TwinNet) or not can_fuse([model]):
        return 1
    return 16


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, one forward pass per chunk of EVAL_CHUNK images."""
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), EVAL_CHUNK):
        logits = model(x[i : i + EVAL_CHUNK]).float()
        yy = y[i : i + EVAL_CHUNK]
        loss_sum += float(F.cross_entropy(logits, yy, reduction="sum"))
        correct += int((logits.argmax(1) == yy).sum())
    return loss_sum / len(x), correct / len(x)


def check_grid(steps: int, span: float) -> None:
    """Refuse a grid without a centre point, too many points or a span that is not a positive number."""
    if not isinstance(steps, int) or not 3 <= steps <= MAX_STEPS or steps % 2 == 0:
        raise ValueError(
            f"steps must be an odd integer from 3 to {MAX_STEPS} (the centre is a grid point), got {steps!r}"
        )
    if not (isinstance(span, (int, float)) and math.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number, got {span!r}")


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse anything but N images (N x C x H x W) with N labels."""
    if x.dim() != 4 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError("need images N x C x H x W and N labels, N > 0")
