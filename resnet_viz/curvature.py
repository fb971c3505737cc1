"""Curvature at the trained weights: the Hessian's extreme eigenvalues and |λmin/λmax| (Li et al. 2018, §6).

The Hessian H of the training loss with respect to every parameter is never formed: Lanczos iteration needs
only Hessian-vector products, H·v, which double backward gives (the gradient of g·v, g the gradient with
its graph kept). Lanczos finds λmax, the largest eigenvalue; the smallest, λmin, is the largest eigenvalue of
the shifted operator λmax·I − H (all of whose eigenvalues are ≥ 0), minus λmax. A negative λmin means the
point is a saddle in some direction, whatever a 2-D slice looks like; |λmin/λmax| near 0 means the negative
curvature is tiny next to the positive one (the quantity Li et al. map to judge convexity).

The model runs on a private eval-mode copy (BatchNorm with its running statistics, as on the landscape's
surfaces), so a shared model is never touched.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .locks import model_lock
from .models import TwinNet

LANCZOS_STEPS = 30
Hvp = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Curvature:
    """The extreme eigenvalues of one model's loss Hessian on one batch."""

    lambda_max: float
    lambda_min: float
    steps: int  # Lanczos steps per eigenvalue
    parameters: int  # the Hessian's size
    images: int
    loss: float

    @property
    def ratio(self) -> float:
        """|λmin/λmax|: 0 for a convex point, larger the more negative curvature there is."""
        return abs(self.lambda_min / self.lambda_max) if self.lambda_max else math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def lanczos_largest(
    hvp: Hvp,
    dim: int,
    *,
    steps: int = LANCZOS_STEPS,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> float:
    """The largest (algebraic) eigenvalue of the symmetric operator ``hvp`` on R^dim, by ``steps`` Lanczos steps.

    Full reorthogonalisation keeps the Krylov basis orthogonal in floating point; the largest Ritz value of the
    tridiagonal matrix approaches the largest eigenvalue from below.
    """
    steps = min(steps, dim)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(dim, generator=gen, dtype=dtype).to(device)
    q /= q.norm()
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    for k in range(steps):
        w = hvp(basis[k]).to(dtype)
        alpha = torch.dot(w, basis[k])
        alphas.append(float(alpha))
        w = w - alpha * basis[k] - (betas[-1] * basis[k - 1] if k else 0)
        Q = torch.stack(basis)
        w = w - Q.T @ (Q @ w)  # full reorthogonalisation
        beta = float(w.norm())
        if k == steps - 1 or beta < 1e-10 * max(1.0, abs(alphas[-1])):
            break
        betas.append(beta)
        basis.append(w / beta)
    n = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if n > 1:
        off = torch.tensor(betas[: n - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    return float(torch.linalg.eigvalsh(T)[-1])


def extreme_eigenvalues(
    hvp: Hvp, dim: int, *, steps: int = LANCZOS_STEPS, seed: int = 0, device: torch.device | str = "cpu"
) -> tuple[float, float]:
    """``(λmax, λmin)`` of a symmetric operator: Lanczos on H, then on the shifted operator λmax·I − H."""
    lam_max = lanczos_largest(hvp, dim, steps=steps, seed=seed, device=device)
    shifted = lanczos_largest(lambda v: lam_max * v - hvp(v), dim, steps=steps, seed=seed + 1, device=device)
    return lam_max, lam_max - shifted


def loss_hvp(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[Hvp, int, float]:
    """``(hvp, n_parameters, loss)``: H·v of the mean cross-entropy on ``(x, y)`` over every parameter of ``model``.

    ``model`` must be a private copy (its ``requires_grad`` flags are set); it runs in eval mode.
    """
    model.eval()
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
        p.grad = None
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
    flat_grad = torch.cat([g.reshape(-1) for g in grads])
    n = flat_grad.numel()

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v = v.to(flat_grad.dtype)
        with torch.enable_grad():
            hv = torch.autograd.grad(flat_grad, params, grad_outputs=v, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]).double()

    return hvp, n, float(loss.detach())


def curvature(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = LANCZOS_STEPS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Curvature:
    """λmax, λmin and |λmin/λmax| of ``model``'s loss Hessian on the batch ``(x, y)`` (``2·steps`` H·v)."""
    with model_lock(model).shared():
        private = copy.deepcopy(model)
    device = next(private.parameters()).device
    hvp, n, loss = loss_hvp(private, x.to(device), y.to(device))
    calls = [0]

    def counted(v: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if progress:
            progress(min(calls[0], 2 * steps), 2 * steps)
        return hvp(v)

    lam_max, lam_min = extreme_eigenvalues(counted, n, steps=steps, seed=seed, device=device)
    if progress:
        progress(2 * steps, 2 * steps)
    return Curvature(lambda_max=lam_max, lambda_min=lam_min, steps=steps, parameters=n, images=len(x), loss=loss)


def twin_curvatures(
    resnet: TwinNet,
    plain: TwinNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int = LANCZOS_STEPS,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Curvature]:
    """:func:`curvature` of both twins on the same batch; ``progress(twin, done, total)``."""
    out: dict[str, Curvature] = {}
    for model in (resnet, plain):
        report = (lambda done, total, twin=model.twin: progress(twin, done, total)) if progress else None
        out[model.twin] = curvature(model, x, y, steps=steps, progress=report)
    return out


# -- the shipped file ------------------------------------------------------------
CURVATURE_FILE = Path(__file__).parent / "assets" / "curvature.json"
FORMAT = "resnet_viz.curvature/1"
DEFAULT_IMAGES = 128  # the shipped loss surfaces' batch: the same loss, seen through its Hessian


def curvature_doc(results: dict[str, dict[str, Curvature]], *, data: str, command: str) -> dict:
    """The JSON document for ``{model name: {twin: Curvature}}`` with how it was computed."""
    return {
        "format": FORMAT,
        "data": data,
        "command": command,
        "batchnorm": "eval (running statistics)",
        "parameters": "every parameter (weights, biases, BatchNorm scales and shifts)",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "models": {name: {twin: c.to_dict() for twin, c in twins.items()} for name, twins in results.items()},
    }


def read_curvature_file(path: str | Path = CURVATURE_FILE) -> dict:
    """The curvature document, its ``models`` as ``{name: {twin: Curvature}}``."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a curvature file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a curvature file (format {FORMAT!r} expected)")
    fields = {"lambda_max", "lambda_min", "steps", "parameters", "images", "loss"}
    doc["models"] = {
        name: {twin: Curvature(**{k: v for k, v in c.items() if k in fields}) for twin, c in twins.items()}
        for name, twins in doc["models"].items()
    }
    return doc


def write_curvature_file(doc: dict, path: str | Path = CURVATURE_FILE) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return path
