"""1-D slices: the loss along one random direction, or along the straight line from initial to trained weights."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..locks import model_lock
from .directions import Directions, random_directions
from .evaluate import Evaluator, LandscapeCancelled, Progress, cancelled, check_batch, check_grid, evaluate
from .json_arrays import from_json, to_json


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
        return {
            "t": to_json(self.t),
            "loss": to_json(self.loss),
            "accuracy": to_json(self.accuracy),
            "kind": self.kind,
            "twin": self.twin,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Line":
        try:
            t, loss, acc = from_json(d["t"]), from_json(d["loss"]), from_json(d["accuracy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a loss line: {exc}") from None
        if not (t.ndim == 1 and t.shape == loss.shape == acc.shape):
            raise ValueError("not a loss line: t, loss and accuracy differ in length")
        return cls(t, loss, acc, str(d.get("kind", "random")), str(d.get("twin", "")))


def loss_line(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    span: float = 1.0,
    steps: int = 41,
    seed: int = 0,
    direction: Directions | None = None,
    init: nn.Module | dict | None = None,
    progress: Progress | None = None,
    cancel=None,
) -> Line:
    """The loss along one filter-normalised random direction through θ (t in [-span, span]).

    With ``init`` (the initial network or its state dict) it is the straight line from the initial to
    the trained weights instead: all floating-point state (weights and BatchNorm running statistics)
    interpolated, t from -span/4 to 1 + span/4 (BatchNorm's running statistics are held at their end
    values outside [0, 1]).
    """
    check_grid(steps, span)
    check_batch(x, y)
    if init is None:
        d = direction if direction is not None else random_directions(model, seed)[0]
        points = _direction_points(model, d, np.linspace(-span, span, steps), x, y, progress, cancel)
        return Line(*points, kind="random", twin=getattr(model, "twin", ""))
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
        if cancelled(cancel):
            raise LandscapeCancelled("the line was stopped")
        with torch.no_grad():
            for k, v in trained.items():
                if v.is_floating_point():
                    # BatchNorm statistics stay between their two ends (a variance can't go negative).
                    w = float(t) if k in params else min(1.0, max(0.0, float(t)))
                    state[k].copy_(torch.lerp(init_state[k].to(v), v, w))
        loss[n], acc[n] = evaluate(net, x, y)
        if progress is not None:
            progress(n + 1, steps)
    return Line(ts, loss, acc, kind="interpolation", twin=getattr(model, "twin", ""))


def _direction_points(model, direction, ts, x, y, progress, cancel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ev = Evaluator(model, (direction, {}))
    x, y = x.to(ev.device), y.to(ev.device)
    loss, acc = np.empty(len(ts)), np.empty(len(ts))
    for n, t in enumerate(ts):
        if cancelled(cancel):
            raise LandscapeCancelled("the line was stopped")
        ev.set(float(t), 0.0)
        loss[n], acc[n] = ev.evaluate(x, y)
        if progress is not None:
            progress(n + 1, len(ts))
    return ts, loss, acc
