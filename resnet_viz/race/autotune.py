"""The fastest way to train a race on this machine, found by measuring it: fused or unfused engine, bfloat16 or
float32.

Which one wins depends on the CPU (AVX-512, bfloat16 instructions, AMX, cores), the image size and the number of
nets; rules written from one machine's numbers were wrong on the next (docs/training-race.md). So a race whose
engine or precision is "auto" first trains a few throwaway steps of each candidate on fresh copies of its own nets
and batches, times again those within 10 % of the fastest, and keeps the fastest. The choice is remembered per
machine and race shape, in the process and in a small JSON file (``$RESNET_VIZ_CACHE``, default
``~/.cache/resnet_viz``), so only the first race of a shape on a machine pays for it. Short races (under
:data:`MIN_STEPS_TO_MEASURE` steps) and choices with one candidate take the default rules instead.

A measurement taken while the machine was busy (another program, other visitors) can crown the wrong candidate
and would be remembered. So a finished race compares its own median step with the measurement it trained by
(:func:`review_choice`): when the race ran much faster than measured, the measurement was slowed by something that
has since gone, and it is forgotten, so the next race of that shape measures again.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import torch

from .. import device as devices
from ..i18n import _
from .fusion import should_fuse

WARMUP_STEPS = 1  # oneDNN builds its kernels on the first step
TIMED_STEPS = 2
REMATCH_MARGIN = 0.10  # candidates this close to the fastest are measured again
MIN_STEPS_TO_MEASURE = 100  # below this a measurement would cost more than a wrong choice could
# A race whose median step beats its measurement by this factor forgets it. The default 1- and 3-seed races' median
# steps took 0.93x and 1.13x their measurement on an idle 2-core Xeon (docs/training-race.md), so an idle
# measurement stays and only a much slowed one is forgotten.
FASTER_THAN_MEASURED = 1.5
CACHE_ENV = "RESNET_VIZ_CACHE"
CACHE_FILE = "race-engines.json"
FORMAT = 1


@dataclass(frozen=True)
class EngineChoice:
    """How a race trains: ``fused`` or not, in ``precision`` ("bf16" or "fp32"), and why.

    ``how`` is "fixed" (set in the config), "default" (the rules of :func:`should_fuse` and
    :func:`resolve_precision`), "measured" (this race measured it) or "remembered" (an earlier measurement of the
    same race shape on this machine). ``seconds_per_step`` holds each measured candidate's median step time,
    keyed by :func:`candidate_name`.
    """

    fused: bool
    precision: str
    how: str
    seconds_per_step: dict[str, float] = field(default_factory=dict)

    @property
    def speedup(self) -> float | None:
        """How much faster the choice is than the slowest candidate measured (None without a measurement)."""
        if len(self.seconds_per_step) < 2:
            return None
        chosen = self.seconds_per_step.get(candidate_name(self.fused, self.precision))
        return max(self.seconds_per_step.values()) / chosen if chosen else None

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_name(fused: bool, precision: str) -> str:
    return f"{'fused' if fused else 'unfused'} {precision}"


def candidates(config, device: torch.device) -> list[tuple[bool, str]]:
    """The (fused, precision) pairs worth trying for ``config`` on ``device``."""
    runs_per_depth = len(config.twins) * config.seeds
    if config.engine != "auto":
        engines = [config.engine == "fused"]
    else:
        engines = [False, True] if runs_per_depth >= 2 and device.type in ("cpu", "cuda") else [False]
    if config.precision != "auto":
        precisions = [config.precision]
    elif device.type == "cpu" and devices.cpu_has_native_bf16():  # emulated bfloat16 only ever lost
        precisions = ["fp32", "bf16"]
    else:
        precisions = [devices.resolve_precision(device, "auto")]
    return [(fused, precision) for fused in engines for precision in precisions]


def default_choice(config, device: torch.device) -> EngineChoice:
    """The rules' choice, without measuring."""
    how = "fixed" if config.engine != "auto" and config.precision != "auto" else "default"
    return EngineChoice(
        should_fuse(config.engine, device, len(config.twins) * config.seeds, config.image_size),
        devices.resolve_precision(device, config.precision),
        how,
    )


def shape_key(config, device: torch.device) -> str:
    """What the speed depends on: the machine, torch, and the race's nets, batch and image size."""
    return json.dumps(
        {
            "machine": _machine(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "depths": list(config.depths),
            "twins": list(config.twins),
            "seeds": config.seeds,
            "batch": config.recipe.batch_size,
            "image_size": config.image_size,
            "engine": config.engine,
            "precision": config.precision,
        },
        sort_keys=True,
    )


def choose_engine(
    config,
    device: torch.device,
    *,
    measure: Callable[[Any, bool, str], float],
    stop: threading.Event | None = None,
    cache_dir: str | None = None,
) -> EngineChoice:
    """The engine and precision ``config`` trains fastest with on ``device``.

    ``measure(config, fused, precision)`` returns seconds per step (a race measures with
    :func:`resnet_viz.race.engine.measure_candidate`, a throwaway race of its own nets and batches); a candidate
    that fails is left out. Returns the default rules' choice when there is nothing to measure, the race is
    short, ``stop`` is set meanwhile, or every candidate failed.
    """
    device = torch.device(device)
    options = candidates(config, device)
    if len(options) < 2 or config.recipe.steps < MIN_STEPS_TO_MEASURE:
        return default_choice(config, device)
    key = shape_key(config, device)
    remembered = _remembered(key, cache_dir)
    if remembered is not None:
        return remembered
    seconds: dict[str, float] = {}
    for fused, precision in options:
        if stop is not None and stop.is_set():
            return default_choice(config, device)
        try:
            seconds[candidate_name(fused, precision)] = round(measure(config, fused, precision), 5)
        except Exception:  # noqa: BLE001 - a candidate that cannot run here is not a choice
            continue
    if stop is not None and stop.is_set() or not seconds:
        return default_choice(config, device)
    # Two timed steps are noisy: candidates within REMATCH_MARGIN of the fastest are timed once more, and each
    # keeps its faster time (a step slowed by something else is never faster than the candidate's own speed).
    fastest = min(seconds.values())
    close = [
        option
        for option in options
        if candidate_name(*option) in seconds and seconds[candidate_name(*option)] <= fastest * (1 + REMATCH_MARGIN)
    ]
    for fused, precision in close if len(close) > 1 else ():
        if stop is not None and stop.is_set():
            return default_choice(config, device)
        name = candidate_name(fused, precision)
        try:
            seconds[name] = min(seconds[name], round(measure(config, fused, precision), 5))
        except Exception:  # noqa: BLE001 - it ran once; keep that time
            continue
    best = min(seconds, key=lambda name: seconds[name])
    fused, precision = next(option for option in options if candidate_name(*option) == best)
    choice = EngineChoice(fused, precision, "measured", seconds)
    _remember(key, choice, cache_dir)
    return choice


def review_choice(
    config,
    device: torch.device,
    choice: EngineChoice | None,
    step_seconds: list[float],
    *,
    cache_dir: str | None = None,
) -> bool:
    """Forget ``choice`` when a finished race of ``config`` ran its steps (``step_seconds``) at least
    :data:`FASTER_THAN_MEASURED` times faster than the measurement said; True when it was forgotten.

    A race that ran slower than measured keeps the choice: the machine is busy now, and the calm measurement
    is the better guide.
    """
    if choice is None or choice.how not in ("measured", "remembered") or len(step_seconds) < MIN_STEPS_TO_MEASURE:
        return False
    measured = choice.seconds_per_step.get(candidate_name(choice.fused, choice.precision))
    observed = statistics.median(step_seconds)
    if not measured or observed <= 0 or measured / observed < FASTER_THAN_MEASURED:
        return False
    _forget(shape_key(config, torch.device(device)), cache_dir)
    return True


def describe_choice(choice: dict | None) -> str:
    """One sentence on how a race trains and why, from :meth:`EngineChoice.to_dict` (as a race file keeps it)."""
    if not choice:
        return ""
    engine = _("fused engine") if choice["fused"] else _("unfused engine")
    precision = devices.PRECISION_NAMES.get(choice["precision"], choice["precision"])
    seconds = choice.get("seconds_per_step") or {}
    if choice["how"] in ("measured", "remembered") and len(seconds) >= 2:
        chosen = seconds.get(candidate_name(choice["fused"], choice["precision"]))
        others = ", ".join(
            f"{_short(name)} {value * 1000:.0f} ms" for name, value in sorted(seconds.items(), key=lambda kv: kv[1])
        )
        text = _(
            "{engine}, {precision}: the fastest of {n} ways measured on this machine (per training step: {steps})"
        ).format(engine=engine, precision=precision, n=len(seconds), steps=others)
        if choice["how"] == "remembered":
            text += " " + _("(remembered from this machine's first race of this size)")
        if choice.get("forgotten"):
            text += ". " + _(
                "This race ran much faster than that measurement (the machine was busier while "
                "measuring), so the next race of this size measures again"
            )
        return text if chosen else f"{engine}, {precision}"
    if choice["how"] == "fixed":
        return _("{engine}, {precision} (as set)").format(engine=engine, precision=precision)
    return _("{engine}, {precision} (default for this race, not measured)").format(engine=engine, precision=precision)


def _short(name: str) -> str:
    """A candidate's name (:func:`candidate_name`) in the reader's language: "fused bf16" -> "fused bfloat16"."""
    engine, _sep, precision = name.partition(" ")
    words = {"fused": _("fused"), "unfused": _("unfused")}
    return f"{words.get(engine, engine)} {devices.PRECISION_NAMES.get(precision, precision)}"


# -- remembering ---------------------------------------------------------------------------------------------

_memory: dict[str, EngineChoice] = {}
_memory_lock = threading.Lock()


def _cache_path(cache_dir: str | None) -> str:
    folder = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "resnet_viz")
    return os.path.join(folder, CACHE_FILE)


def _remembered(key: str, cache_dir: str | None) -> EngineChoice | None:
    with _memory_lock:
        if key in _memory:
            return _memory[key]
    try:
        with open(_cache_path(cache_dir)) as f:
            entry = json.load(f).get("choices", {}).get(key)
        choice = EngineChoice(
            bool(entry["fused"]),
            str(entry["precision"]),
            "remembered",
            {str(k): float(v) for k, v in entry["seconds_per_step"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if choice.precision not in ("bf16", "fp32"):
        return None
    with _memory_lock:
        _memory[key] = choice
    return choice


def _remember(key: str, choice: EngineChoice, cache_dir: str | None) -> None:
    with _memory_lock:
        _memory[key] = replace(choice, how="remembered")
        path = _cache_path(cache_dir)
        try:
            try:
                with open(path) as f:
                    stored = json.load(f)
                if not isinstance(stored.get("choices"), dict):
                    raise ValueError
            except (OSError, ValueError, AttributeError):
                stored = {"format": FORMAT, "choices": {}}
            stored["choices"][key] = {
                "fused": choice.fused,
                "precision": choice.precision,
                "seconds_per_step": choice.seconds_per_step,
                "measured": time.strftime("%Y-%m-%d"),
            }
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write(path, stored)
        except OSError:
            pass  # a read-only home: the choice is still remembered for this process


def _forget(key: str, cache_dir: str | None) -> None:
    with _memory_lock:
        _memory.pop(key, None)
        path = _cache_path(cache_dir)
        try:
            with open(path) as f:
                stored = json.load(f)
            if stored.get("choices", {}).pop(key, None) is None:
                return
            _write(path, stored)
        except (OSError, ValueError, AttributeError):
            pass  # nothing on disk to forget, or a read-only home


def _write(path: str, stored: dict) -> None:
    """Replace the file whole, so a reader in another process never sees half of it."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(stored, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def forget_choices() -> None:
    """Forget this process's remembered choices (the file stays)."""
    with _memory_lock:
        _memory.clear()


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{device.type}: {name}, {os.cpu_count()} cores"
