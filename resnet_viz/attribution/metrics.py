"""How good a map is: similarity of two maps (Spearman, SSIM) and faithfulness against the model and an object
mask (pointing game, mass inside, deletion / insertion curves of Petsiuk et al. 2018), next to a random map."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..explain import read_only
from ..models import TwinNet
from .batching import batch_for

# --- similarity of two maps (the sanity check) ------------------------------------------------------------------


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
    var_a = cov * (mean(ta * ta) - mu_a**2)
    var_b = cov * (mean(tb * tb) - mu_b**2)
    cov_ab = cov * (mean(ta * tb) - mu_a * mu_b)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


# --- faithfulness --------------------------------------------------------------------------------------------------


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


def auc(curve: Sequence[float] | np.ndarray) -> float:
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


def perturbation_curves(
    model: TwinNet,
    x: torch.Tensor,
    saliency: np.ndarray,
    target: int,
    *,
    steps: int = 32,
    seed: int = 0,
    deletion_baseline: float | torch.Tensor = 0.0,
    insertion_baseline: str | float | torch.Tensor = "blur",
) -> tuple[np.ndarray, np.ndarray]:
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
            probs.append(torch.softmax(model(both[i : i + batch]).float(), dim=1)[:, target])
    p = torch.cat(probs).cpu().numpy()
    return p[: steps + 1], p[steps + 1 :]


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """The baseline every method must beat: uniform noise."""
    return np.random.default_rng(seed).random(shape)
