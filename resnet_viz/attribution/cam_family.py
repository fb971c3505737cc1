"""The CAM family from one pass: each method is a different weighting of one layer's activations A (1 x C x h x w)
and of the class scores' gradients G (k x C x h x w, one row per class) that :func:`resnet_viz.explain.layer_pass`
computes once for every chosen method, twin and class.

Every formula below returns k x h x w maps at the layer's resolution, ReLU'd and not rescaled. Score-CAM and
Ablation-CAM perturb (the input, or the activations) once per channel, in batches, reporting progress and
stopping when asked (:class:`CamsCancelled`). The registry (:mod:`.methods`) declares which formula each method is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..explain import LayerPass, layer_pass
from ..models import TwinNet
from .batching import batch_for


class CamsCancelled(Exception):
    """Raised when ``should_stop()`` said so between two batches of a perturbation-based CAM."""


@dataclass
class Perturbation:
    """What the perturbation-based CAMs need beyond the pass: the model, its input, the channel limit and batch
    size (None: all channels; from the input's size), and the progress and stop callbacks."""

    model: TwinNet
    x: torch.Tensor
    max_channels: int | None = None
    batch_size: int | None = None
    on_progress: Callable[[int, int], None] | None = None
    should_stop: Callable[[], bool] | None = None
    done: int = 0
    total: int = 0


def _weighted(weights: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_c w_c A_c): ``weights`` k x C (one row per class), ``act`` 1 x C x h x w -> k x h x w."""
    return F.relu(torch.einsum("kc,chw->khw", weights, act[0]))


# --- one pass: weightings of A and G -------------------------------------------------------------------------------


def grad_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Selvaraju et al. 2017: channel weights are the gradients averaged over the map."""
    return _weighted(p.class_gradients.mean(dim=(2, 3)), p.activations)


def hires_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Draelos and Carin 2020: the gradient times the activation at each position, summed over channels."""
    return F.relu((p.class_gradients * p.activations).sum(dim=1))


def grad_cam_elementwise(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """HiResCAM with each position's and channel's product ReLU'd before the sum."""
    return F.relu(p.class_gradients * p.activations).sum(dim=1)


def grad_cam_plus_plus(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Chattopadhay et al. 2018, their closed form for an exponential score: alpha = G^2 / (2 G^2 + sum(A) G^3),
    weights = sum over positions of alpha ReLU(G); alpha is 0 where its denominator is."""
    g2 = p.class_gradients**2
    denom = 2 * g2 + p.activations.sum(dim=(2, 3), keepdim=True) * g2 * p.class_gradients
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1), 0)
    return _weighted((alpha * F.relu(p.class_gradients)).sum(dim=(2, 3)), p.activations)


def xgrad_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Fu et al. 2020: gradients averaged with each channel's activations (normalised to sum 1) as the weights."""
    total = p.activations.sum(dim=(2, 3), keepdim=True)
    share = torch.where(total != 0, p.activations / torch.where(total != 0, total, 1), 0)
    return _weighted((p.class_gradients * share).sum(dim=(2, 3)), p.activations)


def layer_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Jiang et al. 2021: each position's activation weighed by its own positive gradient."""
    return F.relu((F.relu(p.class_gradients) * p.activations).sum(dim=1))


def first_component(maps: torch.Tensor) -> torch.Tensor:
    """n x C x h x w -> n x h x w: each position's projection on the first principal component of the channels.

    The positions' C-vectors are centred before the SVD (so the component is the direction of largest variance,
    not the mean). A component's sign is arbitrary: it is chosen so the projection correlates positively with the
    channels' sum (the map points where the summed evidence is).
    """
    n, c, h, w = maps.shape
    flat = maps.flatten(2).transpose(1, 2).double()  # n x hw x C
    centred = flat - flat.mean(dim=1, keepdim=True)
    # The first singular pair from the smaller of the two Gram matrices (an eigh of at most min(hw, C) squared):
    # the same component as an SVD of the hw x C matrix, at a fraction of its cost.
    if h * w <= c:
        values, vectors = torch.linalg.eigh(centred @ centred.transpose(1, 2))  # n x hw x hw, ascending
        proj = vectors[..., -1:] * values[:, None, -1:].clamp_min(0).sqrt()  # u1 * s1 = centred @ v1
    else:
        _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # n x C x C
        proj = centred @ vectors[..., -1:]  # n x hw x 1
    total = flat.sum(dim=2, keepdim=True)
    sign = torch.sign(((total - total.mean(dim=1, keepdim=True)) * proj).sum(dim=1, keepdim=True))
    proj = proj * torch.where(sign == 0, 1, sign)
    return proj[..., 0].reshape(n, h, w).to(maps.dtype)


def eigen_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Muhammad and Yeasin 2020: the activations' first principal component (the same map for every class)."""
    return F.relu(first_component(p.activations)).expand(len(p.class_ids), -1, -1)


def eigengrad_cam(p: LayerPass, _: Perturbation) -> torch.Tensor:
    """Eigen-CAM of the class-weighted activations G * A (pytorch-grad-cam's EigenGradCAM)."""
    return F.relu(first_component(p.class_gradients * p.activations))


# --- perturbation-based: one model evaluation per channel, batched -----------------------------------------------


def chosen_channels(act: torch.Tensor, limit: int | None) -> torch.Tensor:
    """The channels a perturbation-based CAM perturbs: all, or the ``limit`` with the largest mean activation
    (a channel that never fires adds nothing to the map)."""
    c = act.shape[1]
    if limit is None or limit >= c:
        return torch.arange(c, device=act.device)
    if limit < 1:
        raise ValueError("max_channels must be at least 1")
    return act[0].mean(dim=(1, 2)).topk(int(limit)).indices.sort().values


def _batches(job: Perturbation, n: int):
    """``(start, stop)`` of each batch of ``n`` perturbations, with progress and the stop check."""
    height, width = job.x.shape[-2:]
    size = int(job.batch_size or batch_for(height, width, 256))  # memory bounded at any input size
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    for start in range(0, n, size):
        if job.should_stop and job.should_stop():
            raise CamsCancelled
        yield start, min(n, start + size)
        job.done += min(n, start + size) - start
        if job.on_progress:
            job.on_progress(job.done, job.total)


def score_cam(p: LayerPass, job: Perturbation) -> torch.Tensor:
    """Wang et al. 2020: each channel, upsampled to the input's size and scaled to [0, 1], masks the input; the
    class scores of the masked inputs, softmaxed over the channels, weigh the channels."""
    channels = chosen_channels(p.activations, job.max_channels)
    act = p.activations[:, channels]
    ids = torch.tensor(p.class_ids, device=act.device)
    size = tuple(job.x.shape[-2:])
    # A constant channel's mask is all zero, so every such channel scores the blank input: evaluate it once.
    flat = act[0].flatten(1)
    varying = (flat.amax(dim=1) > flat.amin(dim=1)).nonzero()[:, 0]
    # On the CPU a channels-last batch runs the convolutions faster; the model's own weights stay as they are.
    layout = torch.channels_last if job.x.device.type == "cpu" else torch.contiguous_format
    with torch.no_grad():
        scores = torch.empty(len(channels), len(ids), device=act.device, dtype=p.logits.dtype)  # C x k
        if len(varying) < len(channels):
            scores[:] = job.model(torch.zeros_like(job.x))[0, ids]
            job.done += len(channels) - len(varying)
        for start, stop in _batches(job, len(varying)):
            chunk = varying[start:stop]
            up = F.interpolate(act[0, chunk, None], size=size, mode="bilinear", align_corners=False)
            lo = up.amin(dim=(2, 3), keepdim=True)
            hi = up.amax(dim=(2, 3), keepdim=True)
            masks = (up - lo) / (hi - lo)
            scores[chunk] = job.model((job.x * masks).contiguous(memory_format=layout))[:, ids]  # b x k
    weights = torch.softmax(scores.float(), dim=0).to(act.dtype)  # over channels, per class
    return _weighted(weights.T, act)


def ablation_cam(p: LayerPass, job: Perturbation) -> torch.Tensor:
    """Desai and Ramaswamy 2020: a channel's weight is the class score's relative drop, (y - y_k) / y, when that
    channel of the layer's activation is set to zero (only the units after the layer run again)."""
    channels = chosen_channels(p.activations, job.max_channels)
    ids = torch.tensor(p.class_ids, device=p.activations.device)
    base = p.logits[0, ids]  # k
    drops = []
    with torch.no_grad():
        for start, stop in _batches(job, len(channels)):
            ablated = p.activations.repeat(stop - start, 1, 1, 1)
            ablated[torch.arange(stop - start), channels[start:stop]] = 0
            drops.append(base - job.model.run(ablated, p.split)[:, ids])  # b x k
    safe = torch.where(base != 0, base, 1)
    weights = torch.where(base != 0, torch.cat(drops) / safe, 0)  # channels x k
    return _weighted(weights.T, p.activations[:, channels])


def perturbations(method_formula: Callable, act: torch.Tensor, limit: int | None) -> int:
    """How many channels a perturbation-based formula perturbs (0 for the one-pass ones)."""
    if method_formula not in (score_cam, ablation_cam):
        return 0
    return len(chosen_channels(act, limit))


def run_cam(formula: Callable, gradients: bool, model, x: torch.Tensor, target: int, options: dict):
    """The registry's runner for a CAM method (see :mod:`.runners`): 1 x 1 x h x w for ``target``."""
    layer = options["layer"] or model.default_layer
    p = layer_pass(model, x, [target], layer=layer, gradients=gradients)
    job = Perturbation(model, x, options.get("max_channels"), options.get("batch_size"))
    job.total = perturbations(formula, p.activations, job.max_channels)
    used = {"layer": layer}
    if job.total:
        used["max_channels"] = options.get("max_channels")
        used["batch_size"] = options.get("batch_size")
    return formula(p, job)[:, None].detach(), used
