"""Race files: JSON and CSV out, checked JSON in, the recorded race that ships, the trained twins saved."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..models import TWINS
from .config import run_label

if TYPE_CHECKING:
    from ..models import TwinNet
    from .config import RaceConfig
    from .data import RaceData
    from .run import Run


class TrainedRace(Protocol):
    """What saving a race's twins reads of a :class:`~resnet_viz.race.engine.Race`."""

    @property
    def runs(self) -> list[Run]: ...

    @property
    def data(self) -> RaceData | None: ...

    @property
    def config(self) -> RaceConfig: ...

    @property
    def done(self) -> bool: ...

    def join(self, timeout: float | None = None) -> bool: ...


RACES_DIR = Path(__file__).parent.parent / "assets" / "races"
RECORDED_RACE = RACES_DIR / "shapes-20-56.json"
CSV_COLUMNS = ("run", "arch", "depth", "step", "train_loss", "train_error", "test_error", "lr")


class RaceFileError(ValueError):
    """A race file is not a race this app wrote. The message says what is wrong."""


def race_to_json(result: dict) -> str:
    return json.dumps(_json_safe(result), indent=None, separators=(",", ":"))


def _json_safe(obj):
    """NaN and inf are not JSON: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def race_to_csv(result: dict) -> str:
    """The histories in long format: one row per run and step."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for run in result["runs"]:
        label = run.get("label") or run_label(run["arch"], run["depth"])
        for row in run["history"]:
            writer.writerow(
                {
                    "run": label,
                    "arch": run["arch"],
                    "depth": run["depth"],
                    **{k: ("" if v is None else v) for k, v in row.items()},
                }
            )
    return buf.getvalue()


def load_race(source: str | bytes | Path | dict) -> dict:
    """Read and check a race file (path, JSON text or bytes, or parsed data); raise :class:`RaceFileError`."""
    if isinstance(source, Path):
        source = source.read_bytes()
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RaceFileError(f"This file is not valid JSON ({e.__class__.__name__}).") from e
    if not isinstance(source, dict) or not isinstance(source.get("runs"), list) or not source["runs"]:
        raise RaceFileError('This JSON is not a race file: it needs a non-empty list of "runs".')
    for i, run in enumerate(source["runs"]):
        if not isinstance(run, dict) or run.get("arch") not in TWINS or not isinstance(run.get("depth"), int):
            raise RaceFileError(f'Run {i + 1} needs "arch" (resnet or plain) and an integer "depth".')
        hist = run.get("history")
        if not isinstance(hist, list):
            raise RaceFileError(f'Run {i + 1} has no "history" list.')
        for row in hist:
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("step"), int)
                or not all(
                    row.get(k) is None or isinstance(row.get(k), (int, float))
                    for k in ("train_loss", "train_error", "test_error")
                )
            ):
                raise RaceFileError(f'Run {i + 1} has a history row without a numeric "step" and metrics.')
        run.setdefault("label", run_label(run["arch"], run["depth"]))
        run.setdefault("snapshots", [])
        if not isinstance(run["snapshots"], list):
            raise RaceFileError(f"Run {i + 1} has snapshots that are not a list.")
        for row in hist:
            for k in ("train_loss", "train_error"):
                if row.get(k) is None:
                    row[k] = float("nan")
            row.setdefault("test_error", None)
    source.setdefault("recipe", {})
    return source


def recorded_race() -> dict | None:
    """The race recorded with the CLI that ships with the package, or None."""
    try:
        return load_race(RECORDED_RACE)
    except (OSError, RaceFileError):
        return None


def race_pairs(race: TrainedRace, seed: int | None = None) -> dict[int, tuple[TwinNet, TwinNet, dict]]:
    """Per depth, the trained twins of one seed (default: the race's first) with the info a checkpoint keeps.

    Depths where one twin is missing (a race of one architecture) have no pair and are left out.
    """
    seed = race.runs[0].seed if seed is None and race.runs else seed
    by_depth: dict[int, dict[str, Run]] = {}
    for run in race.runs:
        if run.seed == seed:
            by_depth.setdefault(run.depth, {})[run.arch] = run
    pairs = {}
    for depth, runs in sorted(by_depth.items()):
        if set(runs) != {"resnet", "plain"}:
            continue
        resnet, plain = runs["resnet"].model, runs["plain"].model
        build = {k: v for k, v in resnet.config.items() if k != "weights"}
        data = race.data
        info = {
            "name": f"race-{depth}",
            "build": build,
            "recipe": race.config.recipe.to_dict(),
            "seed": seed,
            "race_data": None
            if data is None
            else {"name": data.name, "image_size": int(data.train_x.shape[-1]), "train_size": len(data.train_x)},
            "class_names": list(data.classes) if data else None,
            "dataset": data.description if data else None,
            "race": {run.arch: {"status": run.status, "steps": len(run.history)} for run in runs.values()},
        }
        pairs[depth] = (resnet, plain, info)
    return pairs


def race_twins_bytes(race: TrainedRace, depth: int, seed: int | None = None) -> bytes:
    """One depth's trained twins as a checkpoint file's bytes (what :func:`save_race_models` writes), for a
    download that the app's sidebar (or ``load_checkpoint``) reads back. The race must be over."""
    from ..checkpoints import twins_bytes

    if not race.done or not race.join(timeout=10):
        raise ValueError("the race is still running: its weights are changing")
    pairs = race_pairs(race, seed)
    if depth not in pairs:
        raise ValueError(f"this race has no pair of twins at depth {depth}")
    resnet, plain, info = pairs[depth]
    for model in (resnet, plain):
        model.eval()
    return twins_bytes(resnet, plain, info)


def save_race_models(race: TrainedRace, folder: str | os.PathLike, seed: int | None = None) -> list[Path]:
    """Save each depth's trained twins (of ``seed``, default the first) as ``race-<depth>.safetensors``
    (readable by ``load_checkpoint``)."""
    from ..checkpoints import save_twins

    written = []
    for depth, (resnet, plain, info) in race_pairs(race, seed).items():
        for model in (resnet, plain):
            model.eval()
        written.append(save_twins(Path(folder) / f"race-{depth}.safetensors", resnet, plain, info))
    return written
