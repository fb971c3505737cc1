"""Residual versus identity: how much each block's branch F(x) changes the signal.

A block computes ``y = act(F(x) + shortcut(x))`` (post-activation, He et al.
2015) or ``y = F(x) + x`` (pre-activation, He et al. 2016); its plain twin
computes ``y = act(F(x))``.  Everything here measures **F(x) before the
final activation** (the output of the branch's last BatchNorm or
convolution) against **the shortcut** (``shortcut(x)``: ``x`` itself, or
its subsampled / projected version in a block that changes the shape).  For
the plain twin, which has no shortcut, the reference is the block's input
``x``.

Three probes:

* :func:`block_contributions`: per block, ‖F(x)‖, ‖shortcut(x)‖, their ratio
  and cosine, and a spatial map of where F acts;
* :func:`gradient_split`: per block, how much of the gradient reaching the
  block's input flows through the identity and how much through F;
* :func:`lesion_accuracies` and :func:`random_deletion_accuracies`: accuracy
  with blocks deleted at test time (Veit, Wilber, Belongie 2016).

All probes run the network block by block through :meth:`TwinNet.blocks`
(no hooks, no weight gradients) under the model's shared lock
(:func:`resnet_viz.locks.model_lock`), so one model may be probed from many
threads at once while no other thread has it in a temporary state.  Models
must be in eval mode.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .locks import model_lock
from .models import TwinNet


def _check_eval(model: TwinNet) -> None:
    if model.training:
        raise ValueError("put the model in eval mode first: BatchNorm must use its running statistics")


def _prepare(model: TwinNet, x: torch.Tensor) -> torch.Tensor:
    _check_eval(model)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


def keeps_shape(block: nn.Module) -> bool:
    """Whether a block's output has its input's shape (no stride, same channel count).

    Only such blocks can be replaced by the identity in a plain network.
    """
    convs = [m for name, m in block.named_modules()
             if isinstance(m, nn.Conv2d) and not name.startswith("downsample")]
    return all(c.stride == (1, 1) for c in convs) and convs[0].in_channels == convs[-1].out_channels


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1)


# -- forward: F(x) versus the identity -----------------------------------------------------------

@torch.no_grad()
def block_contributions(model: TwinNet, x: torch.Tensor, *, details: bool = True) -> list[dict]:
    """One entry per block, in order, describing F(x) against the identity.

    ``x`` is a normalised N x C x H x W batch (or one C x H x W image). Keys:

    * ``name`` (``"layer1.0"``), ``index``, ``stage`` (1-based), ``resolution`` (h, w);
    * ``residual_norm``: ‖F(x)‖, F before the block's final activation;
    * ``identity_norm``: ‖shortcut(x)‖, or ‖x‖ (the block's input) for the plain twin;
    * ``ratio``: ``residual_norm / identity_norm``;
    * ``cosine``: cosine similarity of F(x) and the shortcut (the input for the
      plain twin; ``None`` where the plain block changes the shape);
    * ``spatial_map``: h x w array, the channel-mean of |F(x)| at each position
      divided by the mean |shortcut(x)| over the whole block, so 1 means "F is
      as large here as a typical identity value". A global divisor avoids the
      spikes a per-pixel ratio gives where x is nearly zero.

    Norms are L2 over C x H x W per image, then averaged over the batch; the
    cosine and the map are averaged over the batch too. ``details=False``
    skips the cosine and the map (both ``None``): the training race's
    snapshots only need the norms.
    """
    with model_lock(model).shared():
        return _block_contributions(model, _prepare(model, x), details)


def _block_contributions(model: TwinNet, x: torch.Tensor, details: bool) -> list[dict]:
    h = model.stem(x)
    entries = []
    stage_of = {name: i + 1 for i, name in enumerate(model.stage_names)}
    for index, (name, block) in enumerate(model.blocks()):
        fx = block.branch(h)
        sx = block.shortcut(h) if block.residual else None
        reference = sx if sx is not None else h
        residual_norm = float(_flat_norm(fx).mean())
        identity_norm = float(_flat_norm(reference).mean())
        cosine = spatial = None
        if details:
            if reference.shape == fx.shape:
                cosine = float(F.cosine_similarity(fx.flatten(1), reference.flatten(1), dim=1, eps=1e-12).mean())
            scale = reference.abs().mean().clamp_min(1e-12)
            spatial = (fx.abs().mean(dim=1) / scale).mean(dim=0).float().cpu().numpy()
        entries.append({
            "name": name, "index": index, "stage": stage_of[name.split(".")[0]],
            "resolution": tuple(fx.shape[-2:]), "residual_norm": residual_norm, "identity_norm": identity_norm,
            "ratio": residual_norm / identity_norm if identity_norm > 0 else float("inf"), "cosine": cosine,
            "spatial_map": spatial,
        })
        h = block.combine(fx, sx)
    return entries


# -- backward: where the gradient flows ----------------------------------------------------------

def gradient_split(model: TwinNet, x: torch.Tensor, targets: torch.Tensor | Sequence[int] | None = None) -> list[dict]:
    """Per block, the part of dL/dx (x the block's input) that comes through each path.

    With z = F(x) + shortcut(x), dL/dx = J_F(x)ᵀ g + J_shortcut(x)ᵀ g where
    g = dL/dz. Keys: ``name``, ``identity_grad_norm`` (‖J_shortcutᵀ g‖; 0 for
    the plain twin), ``residual_grad_norm`` (‖J_Fᵀ g‖), ``input_grad_norm``
    (‖dL/dx‖) and ``identity_share`` = identity / (identity + residual).

    L is the cross-entropy of ``targets`` (the predicted classes by default),
    summed over the batch. Norms are per image, averaged over the batch.
    Gradients are taken with respect to activations only, never the weights.
    """
    with model_lock(model).shared():
        return _gradient_split(model, _prepare(model, x), targets)


def _gradient_split(model: TwinNet, x: torch.Tensor, targets) -> list[dict]:
    with torch.no_grad():
        stem_out = model.stem(x)
    with torch.enable_grad():
        h = stem_out.detach().requires_grad_(True)
        records = []
        for name, block in model.blocks():
            fx = block.branch(h)
            sx = block.shortcut(h) if block.residual else None
            z = fx if sx is None else fx + sx
            records.append((name, h, fx, sx, z))
            h = block.act_out(z)
        logits = model.head(h)
        if targets is None:
            targets = logits.detach().argmax(dim=1)
        targets = torch.as_tensor(targets, device=logits.device).reshape(-1)
        loss = F.cross_entropy(logits, targets, reduction="sum")
        grads_z = torch.autograd.grad(loss, [r[4] for r in records], retain_graph=True)
        entries = []
        for (name, block_in, fx, sx, _), g in zip(records, grads_z):
            g_res = torch.autograd.grad(fx, block_in, grad_outputs=g, retain_graph=True)[0]
            if sx is None:
                g_id = torch.zeros_like(g_res)
            elif sx is block_in:  # identity shortcut: the gradient passes unchanged
                g_id = g
            else:
                g_id = torch.autograd.grad(sx, block_in, grad_outputs=g, retain_graph=True)[0]
            identity = float(_flat_norm(g_id).mean())
            residual = float(_flat_norm(g_res).mean())
            total = identity + residual
            entries.append({"name": name, "identity_grad_norm": identity, "residual_grad_norm": residual,
                            "input_grad_norm": float(_flat_norm(g_id + g_res).mean()),
                            "identity_share": identity / total if total > 0 else 0.0})
    return entries


# -- lesions: delete blocks at test time ---------------------------------------------------------

def _lesioned(block: nn.Module, h: torch.Tensor) -> torch.Tensor:
    # A ResNet block without F is its shortcut; a plain block without F is the identity.
    return block.skip_only(h) if block.residual else h


@torch.no_grad()
def deletion_accuracies(model: TwinNet, images: torch.Tensor, labels: torch.Tensor,
                        deletions: Sequence[Iterable[int]], *, batch_size: int = 250) -> list[float]:
    """Accuracy of ``model`` with each set of block indices deleted.

    Blocks before the first deleted one run once per batch and are shared by
    every deletion set. Raises ValueError for a set that deletes a
    shape-changing block of a plain network.
    """
    with model_lock(model).shared():
        return _deletion_accuracies(model, images, labels, deletions, batch_size)


def _deletion_accuracies(model: TwinNet, images: torch.Tensor, labels: torch.Tensor,
                         deletions: Sequence[Iterable[int]], batch_size: int) -> list[float]:
    _check_eval(model)
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
        x = images[start:start + batch_size].to(device=p.device, dtype=p.dtype)
        y = labels[start:start + batch_size].to(p.device)
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


def lesion_accuracies(model: TwinNet, images: torch.Tensor, labels: torch.Tensor, *,
                      batch_size: int = 250) -> dict:
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


def random_deletion_accuracies(model: TwinNet, images: torch.Tensor, labels: torch.Tensor, *,
                               ks: Sequence[int] | None = None, samples: int = 5, seed: int = 0,
                               batch_size: int = 250) -> dict:
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
    accs = np.array(deletion_accuracies(model, images, labels, sets, batch_size=batch_size)).reshape(len(ks),
                                                                                                     samples)
    return {"k": ks, "mean": accs.mean(axis=1).tolist(), "std": accs.std(axis=1).tolist(),
            "min": accs.min(axis=1).tolist(), "max": accs.max(axis=1).tolist(), "candidates": candidates}


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
    total = 2 ** n_blocks
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
    return {"length": list(range(n_blocks + 1)), "count": counts, "fraction": fractions, "total": total,
            "mean": n_blocks / 2, "central_95": (lo, hi)}
