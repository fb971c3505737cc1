"""The shipped evaluation tables of the bundled twins: written by ``python -m resnet_viz attributions <name>``,
read by the Explain page."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

from ..bundled import load_bundled
from ..data import TEST_SEED, make_shapes
from ..models import TWINS, TwinNet
from .evaluation import RANDOM, MethodSpec, evaluate_attributions, mean_sanity_curves
from .methods import ATTRIBUTION_METHODS
from .sanity import granularity_for

PRECOMPUTED_DIR = Path(__file__).parent.parent / "assets" / "attributions"
EXTRA_LAYERS = ("layer2", "layer1")  # Grad-CAM at earlier stages: does another layer point better?


def evaluation_methods(model: TwinNet) -> list[MethodSpec]:
    """Every method, plus Grad-CAM at the earlier stages."""
    extra = [
        (f"Grad-CAM ({layer})", "Grad-CAM", {"layer": layer})
        for layer in EXTRA_LAYERS
        if layer in model.stage_names and layer != model.default_layer
    ]
    return [*ATTRIBUTION_METHODS, *extra]


def precompute_bundled(
    name: str,
    *,
    twins: Sequence[str] = TWINS,
    images: int = 200,
    sanity_images: int = 16,
    parts: Sequence[str] = ("evaluation", "sanity"),
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
    methods: Sequence[str] | None = None,
) -> Path:
    """Evaluate every method on ``images`` fresh test images of the shapes set for a bundled pair and write
    (or update, twin by twin and part by part) ``assets/attributions/<name>.json``.

    ``progress(stage, done, total)`` is called as the work goes, ``stage`` naming the twin and the part.
    ``methods`` (default: every method, with the Grad-CAM stages and the random row) computes only these
    methods' rows and curves and puts them in place of the file's rows of the same name (new ones before the
    random row).
    """
    resnet, plain, _ = load_bundled(name)
    x, labels, masks = make_shapes(images, seed=TEST_SEED)
    path = PRECOMPUTED_DIR / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(
        {
            "name": name,
            "images": images,
            "test_seed": TEST_SEED,
            "sanity_images": sanity_images,
            "command": f"python -m resnet_viz attributions {name}",
        }
    )
    data.setdefault("twins", {})
    for model in (resnet, plain):
        if model.twin not in twins:
            continue
        start = time.time()
        entry = data["twins"].setdefault(model.twin, {})
        entry["granularity"] = granularity_for(model)

        def reporter(stage: str):
            return None if progress is None else (lambda done, total: progress(stage, done, total))

        if "sanity" in parts:
            curves = mean_sanity_curves(
                model,
                x[:sanity_images],
                methods=methods or ATTRIBUTION_METHODS,
                on_progress=reporter(f"{name} {model.twin}: sanity"),
            )
            entry["sanity"] = {**entry.get("sanity", {}), **curves} if methods else curves
        if "evaluation" in parts:
            rows = evaluate_attributions(
                model,
                x,
                labels,
                masks,
                methods=methods or evaluation_methods(model),
                include_random=not methods,
                on_progress=reporter(f"{name} {model.twin}: evaluation"),
            )
            entry["rows"] = _merged(entry.get("rows", []), rows) if methods else rows
        log(f"{name} {model.twin}: {time.time() - start:.0f} s")
        for row in entry.get("rows", []):
            log(
                f"  {row['method']:>22}: pointing {row['pointing_game']:.3f}  mass {row['mass_inside']:.3f}  "
                f"deletion {row['deletion_auc']:.3f}  insertion {row['insertion_auc']:.3f}"
            )
        PRECOMPUTED_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def _merged(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows with ``new`` ones in place of rows of the same method; other new rows before the random row."""
    fresh = {r["method"]: r for r in new}
    rows = [fresh.pop(r["method"], r) for r in old]
    at = next((i for i, r in enumerate(rows) if r["method"] == RANDOM), len(rows))
    return [*rows[:at], *fresh.values(), *rows[at:]]


def load_precomputed(name: str) -> dict | None:
    """The shipped evaluation of a bundled pair (see :func:`precompute_bundled`), or None."""
    path = PRECOMPUTED_DIR / f"{name}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())
