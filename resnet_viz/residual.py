"""Residual versus identity: how much each block's branch F(x) changes the signal.

A block computes ``y = act(F(x) + shortcut(x))`` (post-activation, He et al.
2015) or ``y = F(x) + x`` (pre-activation, He et al. 2016); its plain twin
computes ``y = act(F(x))``.  Everything here measures **F(x) before the
final activation** (the output of the branch's last BatchNorm or
convolution) against **the shortcut** (``shortcut(x)``: ``x`` itself, or
its subsampled / projected version in a block that changes the shape).  For
the plain twin, which has no shortcut, the reference is the block's input
``x``.

Two probes (deleting blocks is in :mod:`resnet_viz.lesion`):

* :func:`block_contributions`: per block, ‖F(x)‖, ‖shortcut(x)‖, their ratio
  and cosine, and a spatial map of where F acts;
* :func:`gradient_split`: per block, how much of the gradient reaching the
  block's input flows through the identity and how much through F.

All probes run the network block by block through :meth:`TwinNet.blocks`
(no hooks, no weight gradients) under the model's shared lock
(:func:`resnet_viz.locks.model_lock`), so one model may be probed from many
threads at once while no other thread has it in a temporary state.  Models
must be in eval mode.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from .locks import model_lock
from .models import TwinNet


def check_eval(model: TwinNet) -> None:
    if model.training:
        raise ValueError("put the model in eval mode first: BatchNorm must use its running statistics")


def _prepare(model: TwinNet, x: torch.Tensor) -> torch.Tensor:
    check_eval(model)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


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
        entries.append(
            {
                "name": name,
                "index": index,
                "stage": stage_of[name.split(".")[0]],
                "resolution": tuple(fx.shape[-2:]),
                "residual_norm": residual_norm,
                "identity_norm": identity_norm,
                "ratio": residual_norm / identity_norm if identity_norm > 0 else float("inf"),
                "cosine": cosine,
                "spatial_map": spatial,
            }
        )
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


class BlockSum(NamedTuple):
    """One block's tensors in a traced forward pass: z = shortcut + branch (branch alone in the plain twin)."""

    name: str
    input: torch.Tensor
    branch: torch.Tensor
    shortcut: torch.Tensor | None
    sum: torch.Tensor


def trace_block_sums(model: TwinNet, x: torch.Tensor) -> tuple[torch.Tensor, list[BlockSum]]:
    """The logits and every block's sum z, kept in the autograd graph from the stem's output on.

    The stem runs without gradients; call it under ``torch.enable_grad()`` and differentiate with respect to the
    kept tensors (activations only, never the weights).
    """
    with torch.no_grad():
        stem_out = model.stem(x)
    h = stem_out.detach().requires_grad_(True)
    records = []
    for name, block in model.blocks():
        fx = block.branch(h)
        sx = block.shortcut(h) if block.residual else None
        z = fx if sx is None else fx + sx
        records.append(BlockSum(name, h, fx, sx, z))
        h = block.act_out(z)
    return model.head(h), records


def _gradient_split(model: TwinNet, x: torch.Tensor, targets) -> list[dict]:
    with torch.enable_grad():
        logits, records = trace_block_sums(model, x)
        if targets is None:
            targets = logits.detach().argmax(dim=1)
        targets = torch.as_tensor(targets, device=logits.device).reshape(-1)
        loss = F.cross_entropy(logits, targets, reduction="sum")
        grads_z = torch.autograd.grad(loss, [r.sum for r in records], retain_graph=True)
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
            entries.append(
                {
                    "name": name,
                    "identity_grad_norm": identity,
                    "residual_grad_norm": residual,
                    "input_grad_norm": float(_flat_norm(g_id + g_res).mean()),
                    "identity_share": identity / total if total > 0 else 0.0,
                }
            )
    return entries
