"""Scoring methods on many images: the evaluation table (faithfulness per method next to a random map) and the
sanity check's mean curves."""

from __future__ import annotations

import csv
import io
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import TwinNet
from .core import attribute, prepare
from .methods import ATTRIBUTION_METHODS, check_method
from .metrics import auc, mass_inside, perturbation_curves, pointing_game, random_map
from .sanity import granularity_for, sanity_check

RANDOM = "Random"  # the baseline map of the evaluation: uniform noise

MethodSpec = str | tuple[str, str, dict]


def _specs(methods: Sequence[MethodSpec], include_random: bool) -> list[tuple[str, str, dict]]:
    specs = [(m, m, {}) if isinstance(m, str) else (m[0], m[1], dict(m[2])) for m in methods]
    for _, method, options in specs:
        if method != RANDOM:
            check_method(method, options)
    if include_random and all(method != RANDOM for _, method, _ in specs):
        specs.append((RANDOM, RANDOM, {}))
    return specs


def evaluate_attributions(
    model: TwinNet,
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    masks,
    *,
    methods: Sequence[MethodSpec] = ATTRIBUTION_METHODS,
    steps: int = 32,
    seed: int = 0,
    include_random: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict]:
    """Score each method's maps of the true class on images with object masks.

    ``images`` are normalised N x 3 x H x W (as :func:`resnet_viz.make_shapes` gives),
    ``labels`` the classes to explain, ``masks`` N x H x W booleans (or None: then only
    the deletion and insertion curves, which need no mask). ``methods`` are names or
    ``(row name, method, options)``, e.g. ``("Grad-CAM layer2", "Grad-CAM", {"layer": "layer2"})``;
    a ``Random`` row (uniform noise) is added as the baseline.

    One row per method: ``method``, ``images``, ``pointing_game`` (share of images whose
    map peaks on the object), ``mass_inside`` (mean share of the map on the object),
    ``object_share`` (mean share of the image the object covers: a random map's
    expected score on both), ``deletion_auc`` (lower is better), ``insertion_auc``
    (higher is better), and the mean curves ``deletion_curve`` and ``insertion_curve``.
    """
    specs = _specs(methods, include_random)
    n = len(images)
    masks = None if masks is None else np.asarray(masks, dtype=bool)
    total, done = n * len(specs), 0
    rows: list[dict] = []
    for name, method, options in specs:
        pg, mi, dels, ins = [], [], [], []
        for i in range(n):
            if should_stop and should_stop():
                return rows
            x = images[i : i + 1]
            target = int(labels[i])
            if method == RANDOM:
                saliency = random_map((int(x.shape[-2]), int(x.shape[-1])), seed + 7919 * i)
            else:
                saliency = attribute(model, x, method=method, target=target, **options).map
            if masks is not None:
                pg.append(pointing_game(saliency, masks[i]))
                mi.append(mass_inside(saliency, masks[i]))
            d, s = perturbation_curves(model, prepare(model, x)[0], saliency, target, steps=steps, seed=seed + i)
            dels.append(d)
            ins.append(s)
            done += 1
            if on_progress:
                on_progress(done, total)
        dcurve, icurve = np.mean(dels, axis=0), np.mean(ins, axis=0)
        rows.append(
            {
                "method": name,
                "images": n,
                "pointing_game": float(np.mean(pg)) if pg else None,
                "mass_inside": float(np.mean(mi)) if mi else None,
                "object_share": float(masks[:n].mean()) if masks is not None else None,
                "deletion_auc": float(np.mean([auc(c) for c in dels])),
                "insertion_auc": float(np.mean([auc(c) for c in ins])),
                "deletion_curve": [round(float(v), 4) for v in dcurve],
                "insertion_curve": [round(float(v), 4) for v in icurve],
            }
        )
    return rows


def evaluate_image(
    model: TwinNet,
    image: Image.Image | torch.Tensor,
    target: int,
    *,
    mask: np.ndarray | None = None,
    methods: Sequence[MethodSpec] = ATTRIBUTION_METHODS,
    steps: int = 32,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """:func:`evaluate_attributions` on one image of any size (an upload, a photo), for class ``target``.

    Maps are scored at the model's input size; ``mask`` (at the image's size) is resized to it.
    """
    x, _ = prepare(model, image)
    masks = None
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
        masks = (F.interpolate(m, size=tuple(x.shape[-2:]), mode="nearest")[0] > 0.5).cpu().numpy()
    return evaluate_attributions(
        model, x, [target], masks, methods=methods, steps=steps, seed=seed, on_progress=on_progress
    )


TABLE_COLUMNS = ("method", "images", "pointing_game", "mass_inside", "object_share", "deletion_auc", "insertion_auc")


def rows_to_csv(rows: list[dict]) -> str:
    """The evaluation table as CSV (curves left out)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(TABLE_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                "" if row.get(k) is None else (f"{row[k]:.4f}" if isinstance(row[k], float) else row[k])
                for k in TABLE_COLUMNS
            ]
        )
    return buf.getvalue()


def mean_sanity_curves(
    model: TwinNet,
    images: torch.Tensor,
    *,
    methods: Sequence[str] = ATTRIBUTION_METHODS,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Per method, the sanity check's mean Spearman and SSIM at each step over ``images``."""
    granularity = granularity_for(model)
    out, done = {}, 0
    for method in methods:
        per_image = []
        for i in range(len(images)):
            per_image.append(
                sanity_check(model, images[i : i + 1], method=method, seed=seed + i, granularity=granularity)
            )
            done += 1
            if on_progress:
                on_progress(done, len(methods) * len(images))
        out[method] = {
            "layers": [s.layer for s in per_image[0]],
            "spearman": [
                round(float(np.mean([steps[k].spearman for steps in per_image])), 4) for k in range(len(per_image[0]))
            ],
            "ssim": [
                round(float(np.mean([steps[k].ssim for steps in per_image])), 4) for k in range(len(per_image[0]))
            ],
        }
    return out
