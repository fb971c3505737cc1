"""The landscape file (JSON, format ``resnet_viz.landscape/1``): writing, reading, and the shipped files.

A file holds surfaces, optimiser paths and lines by twin, plus the settings they were computed with.
The shipped files for the bundled pairs are in ``resnet_viz/assets/landscapes/<name>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .line import Line
from .path import OptimizerPath
from .surface import Surface

ASSETS_DIR = Path(__file__).parent.parent / "assets" / "landscapes"
FORMAT = "resnet_viz.landscape/1"


def write_landscape_file(
    path: str | Path,
    surfaces: dict[str, Surface],
    *,
    name: str = "",
    paths: dict[str, OptimizerPath] | None = None,
    lines: dict[str, Line] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a landscape file (compact JSON, no NaN: non-finite values are null); ``extra`` adds settings."""
    doc = {
        "format": FORMAT,
        "name": name,
        "surfaces": {k: s.to_dict() for k, s in surfaces.items()},
        "paths": {k: p.to_dict() for k, p in (paths or {}).items()},
        "lines": {k: v.to_dict() for k, v in (lines or {}).items()},
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, separators=(",", ":"), allow_nan=False))
    return path


def read_landscape_file(path_or_text: str | Path | bytes) -> dict:
    """``{"surfaces": {twin: Surface}, "paths": {twin: OptimizerPath}, "lines": {twin: Line}, ...}``."""
    try:
        text = (
            path_or_text.decode()
            if isinstance(path_or_text, bytes)
            else (
                Path(path_or_text).read_text() if not str(path_or_text).lstrip().startswith("{") else str(path_or_text)
            )
        )
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a landscape file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a landscape file (expected format {FORMAT!r})")
    surfaces = {k: Surface.from_dict(v) for k, v in (doc.get("surfaces") or {}).items()}
    paths = {k: OptimizerPath.from_dict(v) for k, v in (doc.get("paths") or {}).items()}
    lines = {k: Line.from_dict(v) for k, v in (doc.get("lines") or {}).items()}
    return {**doc, "surfaces": surfaces, "paths": paths, "lines": lines}


def _bundled_file(name: str) -> Path:
    path = ASSETS_DIR / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in ASSETS_DIR.glob("*.json"))
        raise ValueError(f"no precomputed landscape for {name!r}; available: {available}")
    return path


def precomputed_surfaces(name: str) -> dict[str, Surface]:
    """The shipped surfaces of a bundled pair: ``{"resnet": Surface, "plain": Surface}``."""
    return read_landscape_file(_bundled_file(name))["surfaces"]


def precomputed_paths(name: str) -> dict[str, OptimizerPath]:
    """The shipped optimiser paths of a bundled pair (short runs from the recorded initial weights)."""
    return read_landscape_file(_bundled_file(name))["paths"]


def precomputed_lines(name: str) -> dict[str, Line]:
    """The shipped straight lines from each twin's initial to its trained weights."""
    return read_landscape_file(_bundled_file(name))["lines"]


def precomputed_info(name: str) -> dict:
    """The shipped file's settings (grid, span, seed, images, timing) without the arrays."""
    doc = read_landscape_file(_bundled_file(name))
    return {k: v for k, v in doc.items() if k not in ("surfaces", "paths", "lines")}
