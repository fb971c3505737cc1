"""How long a race will take on this machine, when a queued race will start, and the visitors' budget.

Every estimate comes from step times measured here, remembered the way :mod:`.autotune` remembers its engine
choice (in the process and in ``$RESNET_VIZ_CACHE/race-steps.json``):

- each race that trains to its end records its seconds per training step (test evaluations included) and the
  seconds it spent preparing (data, nets, the engine measurement) under its shape (:func:`.autotune.shape_key`:
  the machine, torch, the nets, seeds, batch and image size);
- a race of a shape measured here is estimated from that measurement; another shape from the measured shape of
  this machine nearest in work (nets x layers x images x pixels per step), scaled by the work;
- on a machine with no measurement yet, a race far over the budget is refused from its arithmetic alone
  (:func:`floor_estimate`: its convolutions' operations at :data:`FLOOR_MARGIN` times the speed of a large matrix
  product measured here, in a few milliseconds), so nothing trains to refuse it; otherwise a throwaway probe
  (ResNet-20 and its plain twin, one seed, a batch of :data:`PROBE_BATCH` random images at the race's image size)
  trains :data:`PROBE_STEPS` steps first and is remembered like a race (a second or two: small enough to answer a
  visitor at once, and the Training race page measures it when a server starts).

A queued race's start is the time the races ahead of it (training, then queued) need to end on the server's
trainers, each from its own measured step rate as it trains (:func:`queue_starts`). The budget
(:func:`check_budget`) refuses a visitor's race whose estimate exceeds an operator's limit
(``$RESNET_VIZ_RACE_BUDGET`` seconds, :data:`DEFAULT_BUDGET_S`); the command line and the library have none.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from ..device import resolve_precision
from .autotune import CACHE_ENV, shape_key
from .config import RaceConfig

BUDGET_ENV = "RESNET_VIZ_RACE_BUDGET"
DEFAULT_BUDGET_S = 600.0  # ten minutes of a trainer per visitor's race
STEPS_FILE = "race-steps.json"
PROBE_STEPS = 3  # one warm-up step, then the timed ones
PROBE_BATCH = 16
MIN_STEPS_TO_RECORD = 20  # shorter races are mostly start-up: their step times would mislead
MAX_SHAPES = 200  # measurements kept per file (oldest dropped)
# A floor is a bound, not a guess: it lets a race run FLOOR_MARGIN times faster than a large matrix product (convolution
# training reaches a fraction of it; the margin also covers a matrix product timed while the server is busy).
FLOOR_MARGIN = 4.0
PEAK_SIZE = 512  # the matrix product timed for the peak: a few milliseconds on a laptop's CPU
# A GPU needs a large product to reach its speed (a small one measures the kernel launch), and half precision: its
# tensor cores run float16 at least as fast as the TF32 convolutions of a float32 race.
GPU_PEAK_SIZE = 4096


@dataclass(frozen=True)
class Estimate:
    """A race's estimated trainer time: ``prepare_s`` (data, nets, engine choice) plus ``train_s``.

    ``how`` is "measured" (this shape trained here), "scaled" (from the nearest shape measured here, by its work),
    "probed" (from a throwaway probe just now) or "floor" (a lower bound from the race's arithmetic,
    :func:`floor_estimate`); ``step_s`` the seconds per step used.
    """

    seconds: float
    train_s: float
    prepare_s: float
    step_s: float
    how: str


@dataclass(frozen=True)
class Verdict:
    """Whether a race fits the budget; ``max_steps``: the most steps of this race that would fit (0: none)."""

    fits: bool
    estimate: Estimate
    limit_s: float
    max_steps: int


def step_work(config: RaceConfig) -> float:
    """What one training step of ``config`` computes, in layer-images-pixels: every net's layers x the batch x
    the pixels, plus the share of a step that the test evaluations take (a forward pass is about a third of a
    training step)."""
    nets_layers = config.seeds * len(config.twins) * sum(config.depths)
    every = config.eval_every or config.recipe.steps
    test_images = config.test_size / (3 * max(1, every))
    return float(nets_layers * (config.recipe.batch_size + test_images) * config.image_size**2)


def image_macs(depth: int, image_size: int) -> int:
    """Multiply-adds of one image through a CIFAR twin's convolutions (stages of 16, 32 and 64 channels, the 2nd and
    3rd at half and a quarter of the side): the stem's 3 x 16 x 9 per pixel, then 9 x 16 x 16 per pixel for each of
    the ``depth - 3`` other convolutions (doubling the channels and quartering the pixels keeps a convolution's cost;
    a stage's first, strided one costs half, hence ``depth - 3`` and not ``depth - 2``). Shortcut projections and
    the classifier are left out: a lower count, as a floor needs."""
    pixels = image_size * image_size
    return 3 * 16 * 9 * pixels + 9 * 16 * 16 * pixels * (depth - 3)


def step_flops(config: RaceConfig) -> float:
    """Floating-point operations of one training step of ``config``: per image, a forward pass (2 per multiply-add)
    and a backward pass of twice that, for every net; plus the share of a step its test evaluations take."""
    every = config.eval_every or config.recipe.steps
    test_images = config.test_size / max(1, every)
    per_net = sum(
        2 * image_macs(d, config.image_size) * (3 * config.recipe.batch_size + test_images) for d in config.depths
    )
    return float(config.seeds * len(config.twins) * per_net)


_peaks: dict[tuple[str, str], float] = {}
_peak_lock = threading.Lock()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def peak_flops(device: torch.device | str, precision: str) -> float:
    """Operations per second of a square matrix product on ``device``, the best of a few, measured once per process:
    on the CPU :data:`PEAK_SIZE` in ``precision`` ("bf16" or "fp32"), elsewhere :data:`GPU_PEAK_SIZE` in float16."""
    device = torch.device(device)
    key = (str(device), precision if device.type == "cpu" else "fp16")
    with _peak_lock:  # a class opening the page at once times one product, not thirty at once (each slower)
        if key not in _peaks:
            _peaks[key] = _time_product(device, key[1])
    return _peaks[key]


def _time_product(device: torch.device, precision: str) -> float:
    size = PEAK_SIZE if device.type == "cpu" else GPU_PEAK_SIZE
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[precision]
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = math.inf
    for _ in range(6):  # the first one warms up
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / max(best, 1e-9)


def floor_estimate(config: RaceConfig, device: torch.device | str) -> Estimate:
    """A lower bound on ``config``'s training time on ``device``: :func:`step_flops` per step at
    :data:`FLOOR_MARGIN` times :func:`peak_flops` (``how`` "floor"); milliseconds, nothing trains."""
    device = torch.device(device)
    rate = FLOOR_MARGIN * peak_flops(device, resolve_precision(device, config.precision))
    step_s = step_flops(config) / rate
    train_s = step_s * config.recipe.steps
    return Estimate(train_s, train_s, 0.0, step_s, "floor")


def _machine_key(config: RaceConfig, device: torch.device) -> str:
    shape = json.loads(shape_key(config, device))
    return json.dumps({k: shape[k] for k in ("machine", "threads", "torch")}, sort_keys=True)


class StepTimes:
    """Seconds per step measured on this machine, per race shape; in memory and in a JSON file."""

    def __init__(self, cache_dir: str | None = None):
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._memory: dict[str, dict[str, dict]] | None = None

    def path(self) -> str:
        folder = (
            self.cache_dir or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "resnet_viz")
        )
        return os.path.join(folder, STEPS_FILE)

    def _load(self) -> dict[str, dict[str, dict]]:
        if self._memory is None:
            try:
                with open(self.path()) as f:
                    stored = json.load(f)
                machines = stored["machines"]
                if not isinstance(machines, dict):
                    raise ValueError
                self._memory = machines
            except (OSError, ValueError, KeyError, TypeError):
                self._memory = {}
        return self._memory

    def record(self, config: RaceConfig, device: torch.device, step_s: float, prepare_s: float, steps: int) -> None:
        """Remember that ``config`` trained at ``step_s`` seconds per step after ``prepare_s`` of preparing."""
        if not (step_s > 0 and math.isfinite(step_s)) or steps < 1:
            return
        device = torch.device(device)
        entry = {
            "work": step_work(config),
            "step_s": round(step_s, 6),
            "prepare_s": round(max(0.0, prepare_s), 3),
            "steps": int(steps),
            "precision": resolve_precision(device, config.precision),
            "when": time.time(),
        }
        with self._lock:
            shapes = self._load().setdefault(_machine_key(config, device), {})
            shapes[shape_key(config, device)] = entry
            while len(shapes) > MAX_SHAPES:
                shapes.pop(min(shapes, key=lambda k: shapes[k].get("when", 0)))
            try:
                os.makedirs(os.path.dirname(self.path()), exist_ok=True)
                tmp = f"{self.path()}.{os.getpid()}.tmp"
                with open(tmp, "w") as f:
                    json.dump({"format": 1, "machines": self._load()}, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path())
            except OSError:
                pass  # a read-only cache folder: remembered for this process

    def lookup(self, config: RaceConfig, device: torch.device) -> tuple[dict, str] | None:
        """The measurement of ``config``'s shape ("measured"), else this machine's nearest in work ("scaled")."""
        device = torch.device(device)
        with self._lock:
            shapes = dict(self._load().get(_machine_key(config, device), {}))
        if not shapes:
            return None
        exact = shapes.get(shape_key(config, device))
        if exact is not None:
            return exact, "measured"
        work = step_work(config)
        precision = resolve_precision(device, config.precision)
        same = [e for e in shapes.values() if e.get("precision") == precision] or list(shapes.values())
        nearest = min(same, key=lambda e: abs(math.log(max(e["work"], 1e-9) / max(work, 1e-9))))
        return nearest, "scaled"

    def forget(self) -> None:
        """Forget this process's measurements (the file stays)."""
        with self._lock:
            self._memory = None


_default_times = StepTimes()
_probe_lock = threading.Lock()


def default_step_times() -> StepTimes:
    return _default_times


def probe_config(config: RaceConfig, device: torch.device) -> RaceConfig:
    """The throwaway race a probe trains: ResNet-20 and its plain twin at ``config``'s image size, one seed, a small
    batch, unfused, in the precision ``config`` would resolve to, no snapshots or evaluations."""
    return replace(
        config,
        depths=(20,),
        twins=("resnet", "plain"),
        recipe=replace(config.recipe, steps=PROBE_STEPS, batch_size=min(PROBE_BATCH, config.recipe.batch_size)),
        seeds=1,
        engine="unfused",
        precision=resolve_precision(torch.device(device), config.precision),
        eval_every=0,
        snapshot_every=0,
        train_size=64,
        test_size=16,
        dataset="shapes",
    )


def measure_probe(config: RaceConfig, device: torch.device) -> float:
    """Seconds per step of :func:`probe_config` on random images (after one warm-up step)."""
    from .data import RaceData
    from .engine import Race  # the engine imports the modules this one imports

    probe = probe_config(config, device)
    size = probe.image_size
    generator = torch.Generator().manual_seed(0)
    data = RaceData(
        "shapes",
        torch.rand(probe.train_size, 3, size, size, generator=generator),
        torch.randint(0, 8, (probe.train_size,), generator=generator),
        torch.rand(probe.test_size, 3, size, size, generator=generator),
        torch.randint(0, 8, (probe.test_size,), generator=generator),
        [str(i) for i in range(8)],
        "probe",
    )
    race = Race(probe, device=device, data=data)
    race.run_here()
    if race.status != "finished" or len(race.step_seconds) < 2:
        raise RuntimeError(race.message or f"the probe ended {race.status}")
    return sorted(race.step_seconds[1:])[len(race.step_seconds[1:]) // 2]


def estimate_race(
    config: RaceConfig,
    device: torch.device | str,
    *,
    times: StepTimes | None = None,
    probe: Callable[[RaceConfig, torch.device], float] | None = None,
) -> Estimate:
    """``config``'s trainer time on ``device`` from the step times measured here (see the module's docstring);
    probes first when this machine has none."""
    device = torch.device(device)
    times = times or default_step_times()
    work = step_work(config)
    found = times.lookup(config, device)
    if found is None:
        with _probe_lock:  # a class opening the page at once on a new server probes once, not thirty times
            found = times.lookup(config, device)
            if found is None:
                small = probe_config(config, device)
                step = (probe or measure_probe)(small, device)
                times.record(small, device, step, 0.0, PROBE_STEPS)
                found = {"work": step_work(small), "step_s": step, "prepare_s": 0.0}, "probed"
    entry, how = found
    step_s = float(entry["step_s"]) * (1.0 if how == "measured" else work / max(float(entry["work"]), 1e-9))
    prepare_s = float(entry.get("prepare_s", 0.0))
    train_s = step_s * config.recipe.steps
    return Estimate(prepare_s + train_s, train_s, prepare_s, step_s, how)


def budget_limit() -> float | None:
    """The operator's limit on a visitor's race, in seconds (``$RESNET_VIZ_RACE_BUDGET``; 0 or "none": no
    limit; :data:`DEFAULT_BUDGET_S` when unset or unreadable)."""
    raw = os.environ.get(BUDGET_ENV, "").strip().lower()
    if raw in ("0", "none", "off"):
        return None
    try:
        value = float(raw) if raw else DEFAULT_BUDGET_S
    except ValueError:
        return DEFAULT_BUDGET_S
    return value if value > 0 and math.isfinite(value) else DEFAULT_BUDGET_S


def floor_verdict(
    config: RaceConfig, device: torch.device | str, limit_s: float | None, *, times: StepTimes | None = None
) -> Verdict | None:
    """The budget's refusal of ``config`` decided from its :func:`floor_estimate` alone, where this machine has no
    step time to estimate it from (the probe would make a visitor wait): a Verdict when even the floor exceeds
    ``limit_s``, else None (the full estimate decides)."""
    if limit_s is None or (times or default_step_times()).lookup(config, torch.device(device)) is not None:
        return None
    verdict = check_budget(floor_estimate(config, device), limit_s, config.recipe.steps)
    return None if verdict.fits else verdict


def check_budget(estimate: Estimate, limit_s: float | None, steps: int) -> Verdict:
    """Whether a race of ``steps`` steps estimated at ``estimate`` fits ``limit_s`` (None: no limit)."""
    if limit_s is None:
        return Verdict(True, estimate, math.inf, steps)
    room = limit_s - estimate.prepare_s
    max_steps = int(room // estimate.step_s) if estimate.step_s > 0 and room > 0 else 0
    return Verdict(estimate.seconds <= limit_s, estimate, limit_s, min(steps, max_steps))


def remaining_seconds(progress: dict, estimate: Estimate | None, prepared_s: float = 0.0) -> float:
    """Seconds a race still needs from its :meth:`Race.progress`: from its own measured rate once it has trained
    steps, else from ``estimate`` (less the ``prepared_s`` it has spent preparing already)."""
    status, step, total = progress["status"], progress["step"], progress["total"]
    if status in ("finished", "stopped", "failed"):
        return 0.0
    if step > 0 and progress.get("elapsed_s"):
        return progress["elapsed_s"] / step * (total - step)
    if estimate is None:
        return 0.0
    return max(0.0, estimate.prepare_s - prepared_s) + estimate.train_s


def queue_starts(running: Sequence[float], queued: Sequence[float], trainers: int) -> list[float]:
    """Seconds from now until each queued race starts: ``running`` holds the training races' remaining seconds,
    ``queued`` the queued races' estimated seconds in queue order; each takes the first trainer to come free."""
    free = sorted(list(running)[:trainers] + [0.0] * max(0, trainers - len(running)))
    starts = []
    for seconds in queued:
        start = free.pop(0)
        starts.append(start)
        free.append(start + seconds)
        free.sort()
    return starts
