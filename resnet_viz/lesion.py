"""Lesions: deleting blocks at test time, and the ResNet seen as an ensemble of paths (Veit, Wilber, Belongie 2016).

A deleted ResNet block becomes its shortcut; a deleted plain block becomes the identity, which only a block
that keeps its shape can do. Models must be in eval mode; every call reads the model under its shared lock.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .locks import model_lock
from .models import TwinNet, _Block
from .residual import check_eval


def keeps_shape(block: nn.Module) -> bool:
    """Whether a block's output has its input's shape (no stride, same channel count).

    Only such blocks can be replaced by the identity in a plain network.
    """
    convs = [m for name, m in block.named_modules() if isinstance(m, nn.Conv2d) and not name.startswith("downsample")]
    return all(c.stride == (1, 1) for c in convs) and convs[0].in_channels == convs[-1].out_channels


def _lesioned(block: _Block, h: torch.Tensor) -> torch.Tensor:
    # A ResNet block without F is its shortcut; a plain block without F is the identity.
    return block.skip_only(h) if block.residual else h


@torch.no_grad()
def deletion_accuracies(
    model: TwinNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    deletions: Sequence[Iterable[int]],
    *,
    batch_size: int = 250,
) -> list[float]:
    """Accuracy of ``model`` with each set of block indices deleted.

    Blocks before the first deleted one run once per batch and are shared by
    every deletion set. Raises ValueError for a set that deletes a
    shape-changing block of a plain network.
    """
    with model_lock(model).shared():
        return _deletion_accuracies(model, images, labels, deletions, batch_size)


def _deletion_accuracies(
    model: TwinNet, images: torch.Tensor, labels: torch.Tensor, deletions: Sequence[Iterable[int]], batch_size: int
) -> list[float]:
    check_eval(model)
    blocks = [block for _, block in model.blocks()]
    requested = [frozenset(int(i) for i in d) for d in deletions]
    sets = list(dict.fromkeys(requested))  # each distinct set runs once
    if not sets:
        return []
    for s in sets:
        bad = [i for i in s if not 0 <= i < len(blocks) or (not model.residual and not keeps_shape(blocks[i]))]
        if bad:
            raise ValueError(f"cannot delete block(s) {sorted(bad)} of this {model.twin} network")
    p = next(model.parameters())
    correct = np.zeros(len(sets))
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device=p.device, dtype=p.dtype)
        y = labels[start : start + batch_size].to(p.device)
        # inputs[i]: the clean input of block i (inputs[len(blocks)] feeds the head).
        firsts = [min(s) if s else len(blocks) for s in sets]
        inputs = [model.stem(x)]
        for i in range(max(firsts)):
            inputs.append(blocks[i](inputs[-1]))
        for k, (s, first) in enumerate(zip(sets, firsts)):
            h = inputs[first]
            for i in range(first, len(blocks)):
                h = _lesioned(blocks[i], h) if i in s else blocks[i](h)
            correct[k] += float((model.head(h).argmax(dim=1) == y).sum())
    accuracy = dict(zip(sets, (correct / max(1, len(images))).tolist()))
    return [accuracy[s] for s in requested]


def lesion_accuracies(model: TwinNet, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 250) -> dict:
    """Accuracy with each single block deleted (Veit et al. 2016).

    Returns ``{"baseline": float, "per_block": [float | None, ...]}``. In a
    ResNet a deleted block becomes its shortcut; in the plain twin it becomes
    the identity where the block keeps the shape and is ``None`` where it does
    not (there is nothing to replace it with).
    """
    blocks = [block for _, block in model.blocks()]
    deletable = [i for i, b in enumerate(blocks) if model.residual or keeps_shape(b)]
    accs = deletion_accuracies(model, images, labels, [()] + [(i,) for i in deletable], batch_size=batch_size)
    per_block: list[float | None] = [None] * len(blocks)
    for i, acc in zip(deletable, accs[1:]):
        per_block[i] = acc
    return {"baseline": accs[0], "per_block": per_block}


def random_deletion_accuracies(
    model: TwinNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    ks: Sequence[int] | None = None,
    samples: int = 5,
    seed: int = 0,
    batch_size: int = 250,
) -> dict:
    """Accuracy against the number k of blocks deleted at random.

    Blocks are drawn among those that keep their shape, the ones both twins
    can lose, so with the same ``seed`` the ResNet and its plain twin lose
    exactly the same blocks. Returns ``{"k": [...], "mean": [...], "std":
    [...], "min": [...], "max": [...], "candidates": [block indices]}``.
    """
    blocks = [block for _, block in model.blocks()]
    candidates = [i for i, b in enumerate(blocks) if keeps_shape(b)]
    if ks is None:
        ks = range(1, min(len(candidates), 10) + 1)
    ks = [int(k) for k in ks if 0 <= int(k) <= len(candidates)]
    rng = np.random.default_rng(seed)
    sets = [rng.choice(candidates, size=k, replace=False).tolist() for k in ks for _ in range(samples)]
    accs = np.array(deletion_accuracies(model, images, labels, sets, batch_size=batch_size)).reshape(len(ks), samples)
    return {
        "k": ks,
        "mean": accs.mean(axis=1).tolist(),
        "std": accs.std(axis=1).tolist(),
        "min": accs.min(axis=1).tolist(),
        "max": accs.max(axis=1).tolist(),
        "candidates": candidates,
    }


# -- the unravelled view: 2^n paths ----------------------------------------------------------------


def path_length_distribution(n_blocks: int) -> dict:
    """Path lengths in a ResNet of ``n_blocks`` blocks seen as an ensemble.

    Each block is either taken (through F) or skipped (through the identity),
    so there are 2^n paths and C(n, k) of them pass through k blocks: a
    binomial distribution with mean n/2. Returns ``{"length", "count",
    "fraction"}`` lists, ``"total"`` (2^n), ``"mean"`` and ``"central_95"``
    (the shortest length range holding at least 95% of the paths).
    """
    if not isinstance(n_blocks, int) or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
    counts = [math.comb(n_blocks, k) for k in range(n_blocks + 1)]
    total = 2**n_blocks
    fractions = [c / total for c in counts]
    # Grow the range from the mode, always taking the larger neighbour, until 95% is inside.
    lo = hi = n_blocks // 2
    mass = fractions[lo]
    while mass < 0.95:
        left = fractions[lo - 1] if lo > 0 else -1
        right = fractions[hi + 1] if hi < n_blocks else -1
        if left >= right:
            lo -= 1
            mass += left
        else:
            hi += 1
            mass += right
    return {
        "length": list(range(n_blocks + 1)),
        "count": counts,
        "fraction": fractions,
        "total": total,
        "mean": n_blocks / 2,
        "central_95": (lo, hi),
    }
