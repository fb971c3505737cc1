"""The race engine: a race's worker thread trains its runs step by step, and reports progress and results.

Every run of a depth starts from the same initial weights as its twin, and every run sees the same
batches in the same order. The race trains in a worker thread, one step of every run at a time so all
curves advance together (on the CPU the runs of a step train side by side, one worker thread per core),
and streams its metrics into plain Python lists that a UI can read at any time.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import threading
import time
from dataclasses import replace
from typing import Callable

import torch

from ..device import autocast_for, describe_device, describe_precision, release_openmp_threads, resolve_precision
from ..models import TwinNet, build_twins
from ..training import batch_indices, evaluate
from .autotune import TIMED_STEPS, WARMUP_STEPS, EngineChoice, choose_engine, review_choice
from .config import RaceConfig, run_label
from .crew import Crew
from .data import DatasetUnavailable, RaceData, load_race_data
from .files import save_race_models
from .fusion import FusedRuns
from .run import Run, instrumented_step, residual_ratios
from .scheduler import RaceScheduler, default_scheduler

RACE_FORMAT = "resnet-viz-race"
RACE_VERSION = 1
EVAL_CHUNK = 100  # test images evaluated between two looks at the Stop button


class Race:
    """A race in a worker thread. ``start()``, then poll :meth:`progress` and :meth:`to_dict`.

    ``stop()`` is idempotent and returns at once; the worker notices within one training step.
    ``saved_name`` is the name a UI kept the finished race under (its list of results), None until then.
    """

    def __init__(
        self,
        config: RaceConfig | None = None,
        *,
        device: torch.device | str | None = None,
        scheduler: RaceScheduler | None = None,
        data: RaceData | None = None,
        stop_event: threading.Event | None = None,
        resume_event: threading.Event | None = None,
    ):
        self.config = config or RaceConfig()
        self.device = torch.device(device or "cpu")
        self.scheduler = scheduler or default_scheduler()
        self.data = data
        self.status = "created"  # created | queued | preparing | running | paused | finished | stopped | failed
        self.message = ""
        self.runs: list[Run] = []
        self.step = 0
        self.images_per_second = 0.0
        self.elapsed_s = 0.0
        self.test_seconds = 0.0  # part of elapsed_s spent measuring test error
        self.started_at: float | None = None
        self.saved_name: str | None = None  # set by the caller once it has kept the finished race
        # What the race computes in, resolved for the device ("bf16" or "fp32"), and its autocast.
        self.precision = resolve_precision(self.device, self.config.precision)
        self._autocast = autocast_for(self.device, self.precision)
        self._stop = stop_event or threading.Event()  # shared by a throwaway race that measures for this one
        if resume_event is None:  # shared, like stop_event, so Pause holds a throwaway race too
            resume_event = threading.Event()
            resume_event.set()
        self._resume = resume_event
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.fused = False  # whether the runs of each depth train as one fused network (set when preparing)
        self.engine_choice: EngineChoice | None = None  # how fused and precision were chosen (set when preparing)
        self.step_seconds: list[float] = []  # wall seconds of each training step (test evaluations included)
        self.choice_forgotten = False  # this race ran much faster than its engine measurement: it was forgotten
        self._units: list = []

    # -- control -----------------------------------------------------------------------------------------
    def start(self) -> "Race":
        with self._lock:
            if self._thread is not None:
                return self
            self.status = "queued"
            release_openmp_threads()  # an idle pool of the caller's would slow the worker's (see there)
            self._thread = threading.Thread(target=self._main, name="training-race", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()  # wake a paused worker so it can leave

    def pause(self) -> None:
        if self.status in ("running", "queued", "preparing"):
            self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set() and not self._stop.is_set()

    @property
    def done(self) -> bool:
        return self.status in ("finished", "stopped", "failed")

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the worker; True once it has ended (not merely set its status), so
        a script may exit right after without interrupting a daemon thread that is still inside torch."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return self.done

    def queue_position(self) -> int | None:
        return self.scheduler.position(self)

    # -- the worker ------------------------------------------------------------------------------------
    def _main(self) -> None:
        acquired = False
        try:
            acquired = self.scheduler.acquire(self, cancelled=self._stop, poll=0.1)
            if not acquired:
                self.status = "stopped"
                return
            self.run_here()
        finally:
            if acquired:
                self.scheduler.release()

    def run_here(self) -> None:
        """Prepare and train in the calling thread, without waiting for a trainer (see :meth:`start`)."""
        try:
            self.status = "preparing"
            self._prepare()
            self._train()
        except DatasetUnavailable as e:
            self.status, self.message = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - the UI shows the message instead of a traceback
            self.status, self.message = "failed", f"The race stopped with an error: {e}"

    def _prepare(self) -> None:
        cfg = self.config
        if self.data is None:
            self.data = load_race_data(
                cfg.dataset,
                train_size=cfg.train_size,
                test_size=cfg.test_size,
                folder=cfg.folder,
                image_size=cfg.image_size,
            )
        # NHWC convolutions: faster on CUDA (tensor cores) and on the CPU too (oneDNN, 10-20% on ResNet-20/56).
        fmt = torch.contiguous_format if self.device.type == "mps" else torch.channels_last
        d = self.data
        self._train_x = d.train_x.to(self.device).contiguous(memory_format=fmt)
        self._train_y = d.train_y.to(self.device)
        self._test_x = d.test_x.to(self.device).contiguous(memory_format=fmt)
        self._test_y = d.test_y.to(self.device)
        self._probe = self._train_x[: cfg.probe_size]
        self._memory_format = fmt
        runs = []
        for depth in cfg.depths:
            for seed in cfg.seed_list():
                twins = build_twins("cifar", depth=depth, num_classes=len(d.classes), seed=seed)
                for model in twins:
                    if model.twin in cfg.twins:
                        # Module.to takes memory_format (torch's docs); torch's type stubs leave it out.
                        model.to(self.device, memory_format=fmt).train()  # type: ignore[call-overload]
                        label = run_label(model.twin, depth)
                        runs.append(Run(model, replace(cfg.recipe, seed=seed), depth, cfg.lr_overrides.get(label)))
        self.runs = runs
        self.engine_choice = choose_engine(
            cfg,
            self.device,
            stop=self._stop,
            measure=lambda c, fused, precision: measure_candidate(
                c, self.device, d, fused, precision, stop=self._stop, resume=self._resume
            ),
        )
        self.fused, self.precision = self.engine_choice.fused, self.engine_choice.precision
        self._autocast = autocast_for(self.device, self.precision)

    def _train(self) -> None:
        self.status = "running"
        self.started_at = time.perf_counter()
        for run in self.runs:
            run.status = "running"
        groups, threads_each = self._plan_workers()
        release_openmp_threads()  # this thread's idle pool (from preparing the data) would slow the workers'
        try:
            with Crew(len(groups), threads_each) as crew:
                self._train_steps(crew, groups)
        finally:
            for unit in self._units:
                if isinstance(unit, FusedRuns):
                    unit.sync_models()
        stopped = self._stop.is_set()
        for run in self.runs:
            if run.status == "running":
                run.status = "stopped" if stopped else "finished"
        self.status = "stopped" if stopped else "finished"
        if not stopped:
            self.choice_forgotten = review_choice(self.config, self.device, self.engine_choice, self.step_seconds)
        if self.started_at is not None:
            self.elapsed_s = time.perf_counter() - self.started_at

    def _plan_workers(self) -> tuple[list[list[Run | FusedRuns]], int]:
        """Training units (a run, or the fused runs of one depth) grouped per worker thread, and each
        worker's CPU threads.

        On the CPU the units of a step train side by side, one worker per core: a race's small convolutions
        use extra cores poorly (a ResNet-56 step at 16 px ran 1.2x faster on 2 threads than on 1), while
        two runs on one core each got 1.7x the throughput of one after the other on 2 threads. Largest units
        first, each onto the least loaded worker, so twins of one depth train at the same time.
        On a GPU the units take turns (they share one device).
        """
        units: list[Run | FusedRuns] = list(self.runs)
        fused: list[FusedRuns] = []
        if self.fused:
            by_depth: dict[int, list[Run]] = {}
            for run in self.runs:
                by_depth.setdefault(run.depth, []).append(run)
            fused = [FusedRuns(runs, self._memory_format) for runs in by_depth.values()]
            units = list(fused)
        self._units = units
        if self.device.type != "cpu":
            return [units], 0
        threads = max(1, torch.get_num_threads())
        if self.fused:  # one fused group per depth would leave a worker idle: halve the largest
            while len(fused) < threads and max(len(u.runs) for u in fused) >= 2:
                big = max(fused, key=lambda u: len(u.runs))
                fused = [u for u in fused if u is not big] + big.split()
            units = self._units = list(fused)
        workers = max(1, min(threads, len(units)))
        groups: list[list[Run | FusedRuns]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for unit in sorted(units, key=lambda u: -_load(u)):
            i = loads.index(min(loads))
            groups[i].append(unit)
            loads[i] += _load(unit)
        return groups, threads // workers

    def _train_steps(self, crew: Crew, groups: list[list[Run | FusedRuns]]) -> None:
        cfg = self.config
        steps = cfg.recipe.steps
        window: list[tuple[float, int]] = []  # (time, images) of recent steps, for images/s
        orders = {seed: batch_indices(len(self._train_x), replace(cfg.recipe, seed=seed)) for seed in cfg.seed_list()}
        for step in range(steps):
            if not self._wait_if_paused():
                break
            batches = {}
            for seed, order in orders.items():
                idx = next(order)
                batches[seed] = (self._train_x[idx], self._train_y[idx])
            want_snapshot = cfg.snapshot_every > 0 and (step % cfg.snapshot_every == 0 or step == steps - 1)
            want_eval = (cfg.eval_every > 0 and (step + 1) % cfg.eval_every == 0) or step == steps - 1
            t0 = time.perf_counter()

            def step_group(group: list[Run | FusedRuns]) -> int:
                images = 0
                for unit in group:
                    if self._stop.is_set():
                        break
                    if isinstance(unit, FusedRuns):
                        images += self._step_fused(unit, step, batches, want_snapshot, want_eval)
                    elif unit.status == "running":
                        x, y = batches[unit.seed]
                        self._step_run(unit, step, x, y, want_snapshot, want_eval)
                        images += len(y)
                return images

            images = sum(crew.map(step_group, groups))
            if self._stop.is_set():
                break
            now = time.perf_counter()
            self.step_seconds.append(now - t0)
            window = (window + [(now - t0, images)])[-20:]
            busy = sum(t for t, _ in window)
            self.images_per_second = sum(n for _, n in window) / busy if busy > 0 else 0.0
            self.step = step + 1
            self.elapsed_s = now - self._started()
            if not any(run.status == "running" for run in self.runs):
                break

    def _started(self) -> float:
        """When training began (``started_at``, set before the first step)."""
        if self.started_at is None:
            raise RuntimeError("the race has not started training")
        return self.started_at

    def _step_fused(self, unit: FusedRuns, step: int, batches: dict, want_snapshot: bool, want_eval: bool) -> int:
        running = [run for run in unit.runs if run.status == "running"]
        if not running:
            return 0
        t0 = time.perf_counter()
        results = unit.step(step, batches, want_grads=want_snapshot, autocast=self._autocast)
        spent = (time.perf_counter() - t0) / len(running)
        errors = None
        if want_eval:
            t0 = time.perf_counter()
            errors = unit.test_errors(self._test_x, self._test_y, EVAL_CHUNK, self._stop.is_set, self._autocast)
            with self._lock:
                self.test_seconds += time.perf_counter() - t0
        for i, (run, (loss, error, grads)) in enumerate(zip(unit.runs, results)):
            if run.status != "running":
                continue
            run.train_seconds += spent
            run.images += len(batches[run.seed][1])
            test_error = functools.partial(_nth, errors, i) if want_eval else None
            self._record(
                run,
                step,
                loss,
                error,
                test_error,
                grads if want_snapshot else None,
                before_snapshot=functools.partial(unit.sync_model, run),
            )
        return len(running) * len(batches[running[0].seed][1])

    @staticmethod
    def _row(run: Run, step: int, loss: float, error: float) -> dict:
        return {
            "step": step + 1,
            "train_loss": round(loss, 5),
            "train_error": round(error, 5),
            "test_error": None,
            "lr": round(run.recipe.lr_at(step), 6),
        }

    def _wait_if_paused(self) -> bool:
        paused_at = None
        while not self._resume.wait(0.1):
            if paused_at is None:
                paused_at, self.status = time.perf_counter(), "paused"
        if paused_at is not None:
            self.started_at = self._started() + time.perf_counter() - paused_at  # ETA and elapsed leave out the pause
            if not self._stop.is_set():
                self.status = "running"
        return not self._stop.is_set()

    def _step_run(self, run: Run, step: int, x, y, want_snapshot: bool, want_eval: bool) -> None:
        lr = run.recipe.lr_at(step)
        t0 = time.perf_counter()
        loss, error, grads = instrumented_step(run, x, y, lr, want_grads=want_snapshot, autocast=self._autocast)
        run.train_seconds += time.perf_counter() - t0
        run.images += len(y)

        def test_error() -> float | None:
            t0 = time.perf_counter()
            value = self._test_error(run.model)
            with self._lock:  # workers finish their evaluations at the same time
                self.test_seconds += time.perf_counter() - t0
            return value

        self._record(run, step, loss, error, test_error if want_eval else None, grads)

    def _record(
        self,
        run: Run,
        step: int,
        loss: float,
        error: float,
        test_error: Callable[[], float | None] | None,
        grads: dict | None,
        before_snapshot: Callable[[], None] | None = None,
    ) -> None:
        """Append a step's row (with its test error where asked) and snapshot (with ``grads``); a NaN or
        infinite loss ends the run as diverged."""
        row = self._row(run, step, loss, error)
        if not math.isfinite(loss):
            run.status = "diverged"
            run.history.append(row)
            return
        if test_error is not None:
            value = test_error()
            row["test_error"] = None if value is None else round(value, 5)
        run.history.append(row)
        if grads is not None:
            if before_snapshot is not None:
                before_snapshot()
            with self._autocast():
                ratios = residual_ratios(run.model, self._probe)
            run.snapshots.append({"step": step + 1, "grad_norms": grads, "ratios": ratios})

    def _test_error(self, model: TwinNet) -> float | None:
        """Test error, in chunks so Stop is honoured within a chunk; None when stopped midway."""
        wrong, n = 0.0, len(self._test_x)
        for i in range(0, n, EVAL_CHUNK):
            if self._stop.is_set():
                return None
            x, y = self._test_x[i : i + EVAL_CHUNK], self._test_y[i : i + EVAL_CHUNK]
            with self._autocast():
                wrong += evaluate(model, x, y, batch_size=EVAL_CHUNK)["error"] * len(x)
        return wrong / max(1, n)

    # -- reading -----------------------------------------------------------------------------------------
    def progress(self) -> dict:
        """Step, total, fraction, ETA (s), images/s and the queue position, for a progress bar."""
        total = self.config.recipe.steps
        eta = None
        if self.step and self.status in ("running", "paused"):
            eta = self.elapsed_s / self.step * (total - self.step)
        return {
            "status": self.status,
            "step": self.step,
            "total": total,
            "fraction": self.step / total,
            "eta_s": eta,
            "images_per_second": self.images_per_second,
            "elapsed_s": self.elapsed_s,
            "queue_position": self.queue_position(),
            "message": self.message,
        }

    def engine_choice_dict(self) -> dict | None:
        """How the race chose its engine (:meth:`EngineChoice.to_dict`), with ``forgotten``: whether this race ran
        so much faster than measured that the measurement was dropped (:func:`review_choice`), and this race's median
        step (``race_median_step_s``)."""
        if self.engine_choice is None:
            return None
        median = statistics.median(self.step_seconds) if self.step_seconds else None
        return {
            **self.engine_choice.to_dict(),
            "forgotten": self.choice_forgotten,
            "race_median_step_s": None if median is None else round(median, 5),
        }

    def to_dict(self) -> dict:
        """The race as JSON-ready data (safe to call while it trains: lists are only appended to)."""
        d = self.data
        return {
            "format": RACE_FORMAT,
            "version": RACE_VERSION,
            "status": self.status,
            "dataset": {
                "name": self.config.dataset,
                "description": d.description if d else "",
                "classes": d.classes if d else [],
            },
            "recipe": {**self.config.recipe.to_dict(), "precision": self.precision},
            "config": self.config.to_dict(),
            "device": describe_device(self.device),
            "engine": "fused" if self.fused else "unfused",
            "engine_choice": self.engine_choice_dict(),
            "precision": describe_precision(self.device, self.precision),
            "elapsed_s": round(self.elapsed_s, 2),
            "runs": [
                {**run.to_dict(), "history": list(run.history), "snapshots": list(run.snapshots)} for run in self.runs
            ],
        }


def _nth(values: list[float] | None, i: int) -> float | None:
    return None if values is None else values[i]


def _load(unit: Run | FusedRuns) -> int:
    return unit.load if isinstance(unit, FusedRuns) else unit.depth


def measure_candidate(
    config: RaceConfig,
    device: torch.device,
    data: RaceData | None,
    fused: bool,
    precision: str,
    *,
    stop: threading.Event | None = None,
    resume: threading.Event | None = None,
) -> float:
    """Median seconds per training step of a throwaway race of ``config``'s nets with this engine and precision
    (after :data:`~resnet_viz.race.autotune.WARMUP_STEPS`; no snapshots, and the final step, which measures test
    error, is left out): how :func:`~resnet_viz.race.autotune.choose_engine` measures for a race. It waits between
    steps while ``resume`` is clear (the race was paused)."""
    steps = WARMUP_STEPS + TIMED_STEPS + 1
    probe_config = replace(
        config,
        recipe=replace(config.recipe, steps=steps),
        engine="fused" if fused else "unfused",
        precision=precision,
        eval_every=0,
        snapshot_every=0,
        test_size=min(config.test_size, 100),
    )
    probe = Race(probe_config, device=device, data=data, stop_event=stop, resume_event=resume)
    probe.run_here()
    if probe.status != "finished":
        raise RuntimeError(probe.message or f"the probe ended {probe.status}")
    return statistics.median(probe.step_seconds[WARMUP_STEPS : steps - 1])


def run_race(
    config: RaceConfig | None = None,
    *,
    device: torch.device | str | None = None,
    scheduler: RaceScheduler | None = None,
    on_progress: Callable[[Race], None] | None = None,
    poll_s: float = 0.5,
    save_dir: str | os.PathLike | None = None,
) -> dict:
    """Run a race to the end in the calling thread's company; returns :meth:`Race.to_dict`.

    With ``save_dir``, each depth's trained twins are saved there as well (see :func:`save_race_models`).
    """
    race = Race(config, device=device, scheduler=scheduler or RaceScheduler(1)).start()
    try:
        while not race.join(poll_s):
            if on_progress:
                on_progress(race)
    except KeyboardInterrupt:
        race.stop()
        race.join()
    if on_progress:
        on_progress(race)
    if race.status == "failed":
        raise RuntimeError(race.message)
    if save_dir is not None:
        save_race_models(race, save_dir)
    return race.to_dict()
