"""The public CAM call: :func:`cams` computes every chosen method of the CAM family from one pass.

The formulas are in :mod:`.cam_family`; which methods are CAMs, and which of them read gradients or perturb
the model, the registry (:mod:`.methods`) says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..explain import LayerPass, layer_pass, read_only
from .cam_family import Perturbation, perturbations
from .core import _label, prepare
from .methods import METHODS, method_info


@dataclass
class Cams:
    """Top-k predictions and, per chosen CAM method, one map per class.

    ``maps[method]`` is k x H x W in [0, 1] at the image's own size (each map divided by its maximum; an
    all-zero map stays zero); ``raw[method]`` is k x h x w at the layer's resolution, ReLU'd, not rescaled.
    """

    indices: np.ndarray
    probs: np.ndarray
    labels: list[str]
    layer: str
    maps: dict[str, np.ndarray]
    raw: dict[str, torch.Tensor] = field(repr=False)


@dataclass(frozen=True)
class _CamMethod:
    """A registry method that is a CAM, with its formula (never None here)."""

    name: str
    formula: Callable[[LayerPass, Perturbation], torch.Tensor]
    gradients: bool


def _formula(name: str) -> _CamMethod:
    method = method_info(name)
    if method.cam is None:
        raise ValueError(f"{name} is not a CAM method; choose from {', '.join(cam_methods())}")
    return _CamMethod(method.name, method.cam, method.cam_gradients)


def cam_methods(*, perturbation: bool = True) -> tuple[str, ...]:
    """The registry's CAM methods (with or without the perturbation-based ones)."""
    return tuple(m.name for m in METHODS.values() if m.cam is not None and (perturbation or not m.expensive))


def cams_tensor(
    model,
    x: torch.Tensor,
    methods: Sequence[str],
    class_ids: list[int] | None = None,
    *,
    topk: int = 5,
    layer: str | None = None,
    max_channels: int | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[LayerPass, dict[str, torch.Tensor]]:
    """Every chosen CAM from one pass on a prepared 1 x C x H x W input of a model usable as it is (eval mode).

    Returns the pass and ``{method: k x h x w}`` at the layer's resolution.
    """
    declared = [_formula(m) for m in methods]
    p = layer_pass(model, x, class_ids, topk=topk, layer=layer, gradients=any(m.gradients for m in declared))
    job = Perturbation(model, x, max_channels, batch_size, on_progress, should_stop)
    job.total = sum(perturbations(m.formula, p.activations, max_channels) for m in declared)
    return p, {m.name: m.formula(p, job).detach() for m in declared}


def cams(
    model,
    image: Image.Image | torch.Tensor,
    *,
    methods: Sequence[str] | None = None,
    topk: int = 5,
    class_ids: list[int] | None = None,
    layer: str | None = None,
    max_channels: int | None = None,
    batch_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Cams:
    """Several CAM methods for ``model``'s top ``topk`` classes (or ``class_ids``) on ``image``, from one pass.

    ``methods`` defaults to every one-pass method (:func:`cam_methods` with ``perturbation=False``); add
    "Score-CAM" or "Ablation-CAM" for the perturbation-based ones, which evaluate the model once per channel
    (at most ``max_channels``, those with the largest mean activation) in batches of ``batch_size`` (None: from
    the input's size), call ``on_progress(done, total)`` after each batch and raise :class:`CamsCancelled` when
    ``should_stop()`` returns True. ``layer`` is a stage or block (default the last stage). ``image`` is a PIL
    image (preprocessed the way the model expects) or a normalised 1 x 3 x H x W tensor. Safe on a shared
    model from many threads: no hook, no ``.grad``, no mode change is left behind.
    """
    methods = list(cam_methods(perturbation=False) if methods is None else methods)
    if not methods:
        raise ValueError("choose at least one CAM method")
    if topk < 1:
        raise ValueError("topk must be at least 1")
    x, out_size = prepare(model, image)
    with read_only(model) as usable:
        p, raw = cams_tensor(
            usable,
            x,
            methods,
            class_ids,
            topk=topk,
            layer=layer,
            max_channels=max_channels,
            batch_size=batch_size,
            on_progress=on_progress,
            should_stop=should_stop,
        )
    # Every method's maps upsampled and scaled in one batch: one call per step instead of one per method.
    stacked = torch.cat([m.float() for m in raw.values()])[:, None]
    up = F.interpolate(stacked, size=out_size, mode="bilinear", align_corners=False)[:, 0]
    peak = up.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    scaled = up.clamp_min_(0).div_(peak).clamp_(0, 1).cpu().numpy()  # in place: these maps are large
    k = len(p.class_ids)
    maps = {name: scaled[i * k : (i + 1) * k] for i, name in enumerate(raw)}
    probs = torch.softmax(p.logits[0].float(), dim=0)[p.class_ids].cpu().numpy()
    return Cams(
        indices=np.array(p.class_ids),
        probs=probs,
        labels=[_label(model, i) for i in p.class_ids],
        layer=p.layer,
        maps=maps,
        raw=raw,
    )
