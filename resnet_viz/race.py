"""Training races: ResNets and their plain twins of several depths, trained side by side.

A race is a set of runs (twin x depth) over one data set with one recipe. Every
run of a depth starts from the same initial weights as its twin, and every run
sees the same batches in the same order. The race trains in a worker thread,
one step of every run at a time so all curves advance together (on the CPU the
runs of a step train side by side, one worker thread per core), and streams
its metrics into plain Python lists that a UI can read at any time.

A server-wide :class:`RaceScheduler` bounds how many races train at once;
the others wait in a queue whose position they can report.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import queue
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from .data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes_raw, normalize_shapes
from .device import (PRECISIONS, autocast_for, describe_device, describe_precision, release_openmp_threads,
                     resolve_precision)
from .gradients import main_path_weights
from .models import TWINS, TwinNet, build_twins
from .residual import block_contributions
from .slots import Slots
from .training import Recipe, batch_indices, eval_mode, evaluate, make_optimizer, train_step

RACE_FORMAT = "resnet-viz-race"
RACE_VERSION = 1
DATASETS = ("shapes-easy", "shapes", "cifar10", "folder")
MAX_DEPTH = 110
IMAGE_SIZES = (16, 32)
EVAL_CHUNK = 100  # test images evaluated between two looks at the Stop button
RACES_DIR = Path(__file__).parent / "assets" / "races"
RECORDED_RACE = RACES_DIR / "shapes-20-56.json"
# The image folder a server may offer; set by whoever runs the server, never by a visitor.
FOLDER_ENV = "RESNET_VIZ_RACE_FOLDER"
MAX_RACES_ENV = "RESNET_VIZ_MAX_RACES"
CACHE_DIR = Path(os.environ.get("RESNET_VIZ_CACHE", Path.home() / ".cache" / "resnet_viz"))
CIFAR_CACHE = CACHE_DIR / "cifar10"
# He et al. 2015, Table 6: CIFAR-10 test error (%) of the ResNets.
PAPER_CIFAR10_TEST_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}

# The quick race (He et al.'s depths 20 and 56): about 45 s on 2 CPU cores with bfloat16 (see README).
# Easy shapes at 16x16 px: a quarter of the work per image. Adam at lr 0.01 without weight decay: in a few
# hundred steps plain-56 leaves chance only with a large Adam step (SGD at 0.005-0.5 and Adam at 5e-4-2e-3
# left it at chance); with coupled L2 decay Adam keeps shrinking the scale-invariant weights instead.
# 30 warm-up steps: without them (360 steps) ResNet-56 lagged ResNet-20 all race and ended above it on seeds
# 0 and 1. benchmarks/check_race_recipe.py checks this recipe on 3 seeds and other image sets.
# The page and the CLI offer SGD with momentum as in the paper.
QUICK_RECIPE_CPU = Recipe(steps=400, batch_size=32, optimizer="adam", lr=1e-2, momentum=0.9, weight_decay=0.0,
                          warmup_steps=30, schedule="cosine", seed=0)
QUICK_DATASET = "shapes-easy"
QUICK_IMAGE_SIZE = 16


def quick_recipe(device: torch.device | str = "cpu") -> Recipe:
    """The quick race's recipe; the same on every device, so races on a laptop and a GPU compare."""
    return replace(QUICK_RECIPE_CPU)


class DatasetUnavailable(RuntimeError):
    """A data set cannot be loaded (offline, not configured, empty folder). The message says why."""


class RaceFileError(ValueError):
    """A race file is not a race this app wrote. The message says what is wrong."""


# -- data sets ------------------------------------------------------------------------------------------

@dataclass
class RaceData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    description: str


def load_race_data(name: str = "shapes", *, train_size: int = 4000, test_size: int = 500,
                   folder: str | Path | None = None, download: bool = True,
                   timeout_s: float = 5.0, image_size: int = 32) -> RaceData:
    """Load a race's data set: ``"shapes-easy"`` and ``"shapes"`` (bundled, offline), ``"cifar10"`` or ``"folder"``.

    ``"folder"`` reads ``folder`` (or the path in ``$RESNET_VIZ_RACE_FOLDER``): one sub-folder of
    images per class. Images are ``image_size`` pixels square (shapes are drawn at that size, the others
    resized with antialiasing). Raises :class:`DatasetUnavailable` with a readable message on failure.
    """
    if name in ("shapes", "shapes-easy"):
        variant = "easy" if name == "shapes-easy" else "standard"
        tx, ty = _shapes(train_size, TRAIN_SEED, variant, image_size)
        vx, vy = _shapes(test_size, TEST_SEED, variant, image_size)
        kind = "shapes, easy variant" if variant == "easy" else "shapes"
        return RaceData(name, tx, ty, vx, vy, list(SHAPE_CLASSES),
                        f"{kind}, {image_size}x{image_size} px ({train_size} training images, {test_size} test images)")
    if name == "cifar10":
        data = _load_cifar10(train_size, test_size, download=download, timeout_s=timeout_s)
    elif name == "folder":
        data = _load_folder(folder or os.environ.get(FOLDER_ENV), train_size, test_size)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if image_size != data.train_x.shape[-1]:
        data = replace(data, train_x=_resize(data.train_x, image_size), test_x=_resize(data.test_x, image_size),
                       description=data.description.replace(" (", f", resized to {image_size}x{image_size} px (", 1))
    return data


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)


_shapes_lock = threading.Lock()


def _shapes(n: int, seed: int, variant: str = "standard", size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached: generating shapes takes seconds, and races only ever read them. Locked, so a race
    started while the page warms the cache waits for that work instead of repeating it."""
    with _shapes_lock:
        return _shapes_cached(n, seed, variant, size)


@functools.lru_cache(maxsize=4)
def _shapes_cached(n: int, seed: int, variant: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Also on disk (uint8, 3 KB an image): a fresh server then starts its first race in a second.
    name = "shapes" if variant == "standard" else f"shapes-{variant}"
    path = CACHE_DIR / (f"{name}-{n}-seed{seed}.pt" if size == 32 else f"{name}-{size}px-{n}-seed{seed}.pt")
    try:
        saved = torch.load(path, weights_only=True)
        images, labels = saved["images"], saved["labels"]
    except Exception:  # noqa: BLE001 - missing or unreadable cache: generate again
        raw, labels_np, _ = make_shapes_raw(n, seed=seed, size=size, variant=variant)
        images, labels = torch.from_numpy(raw), torch.from_numpy(labels_np)
        try:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"images": images, "labels": labels}, tmp)
            tmp.replace(path)
        except OSError:
            pass  # a read-only home only costs the generation time
    return normalize_shapes(images.numpy()), labels


def _can_reach(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _subset(x: torch.Tensor, y: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def _load_cifar10(train_size: int, test_size: int, *, download: bool, timeout_s: float) -> RaceData:
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as e:
        raise DatasetUnavailable("CIFAR-10 needs torchvision (pip install torchvision).") from e
    root = CIFAR_CACHE
    present = (root / "cifar-10-batches-py").is_dir()
    # torchvision's download has no timeout of its own: check the network first so offline fails fast.
    if not present and (not download or not _can_reach("www.cs.toronto.edu", 443, timeout_s)):
        raise DatasetUnavailable("CIFAR-10 is not cached on this server and cannot be downloaded "
                                 "(no internet connection). Use the bundled shapes data set instead.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        train = CIFAR10(str(root), train=True, download=not present)
        test = CIFAR10(str(root), train=False, download=False)
    except Exception as e:  # noqa: BLE001 - any failure here means "not available"
        raise DatasetUnavailable(f"CIFAR-10 could not be loaded: {e}") from e

    def to_tensor(ds):
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255
        return (x - 0.5) / 0.25, torch.tensor(ds.targets)

    tx, ty = _subset(*to_tensor(train), train_size, TRAIN_SEED)
    vx, vy = _subset(*to_tensor(test), test_size, TEST_SEED)
    return RaceData("cifar10", tx, ty, vx, vy, list(train.classes),
                    f"CIFAR-10 ({len(tx)} training images, {len(vx)} test images)")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def _load_rgb32(path: str) -> torch.Tensor | None:
    """An image as uint8 32x32x3, or None when the file cannot be read (skipped, not fatal)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((32, 32))
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(32, 32, 3)


def _load_folder(path, train_size: int, test_size: int) -> RaceData:
    """One sub-folder of images per class, read with torchvision's ``ImageFolder`` (its class order and file
    discovery); at most ``(train_size + test_size) / classes`` images per class, unreadable files skipped."""
    if not path:
        raise DatasetUnavailable(f"No image folder is configured on this server (set ${FOLDER_ENV}).")
    root = Path(path)
    try:
        from torchvision.datasets import ImageFolder

        folder = ImageFolder(str(root), loader=_load_rgb32, is_valid_file=_is_image, allow_empty=True)
    except (ImportError, OSError):
        folder = None  # not a folder, no class sub-folders, or no torchvision
    if folder is None or len(folder.classes) < 2:
        raise DatasetUnavailable(f"The configured image folder {root} needs at least two class sub-folders.")
    per_class = math.ceil((train_size + test_size) / len(folder.classes))
    taken: dict[int, int] = {}
    images, labels = [], []
    for file, label in folder.samples:  # sorted by class, then file name
        if taken.get(label, 0) >= per_class:
            continue
        image = folder.loader(file)
        if image is not None:
            images.append(image)
            labels.append(label)
            taken[label] = taken.get(label, 0) + 1
    if len(images) < 10:
        raise DatasetUnavailable(f"The configured image folder {root} holds too few readable images.")
    x = (torch.stack(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    y = torch.tensor(labels)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(TRAIN_SEED))
    n_test = max(1, min(test_size, len(x) // 5))
    test, train = perm[:n_test], perm[n_test:]
    return RaceData("folder", x[train], y[train], x[test], y[test], list(folder.classes),
                    f"image folder {root.name} ({len(train)} training images, {n_test} test images)")


# -- configuration ----------------------------------------------------------------------------------------

@dataclass
class RaceConfig:
    """What to race: ``depths`` x ``twins``, one data set and one recipe."""

    depths: tuple[int, ...] = (20, 56)
    twins: tuple[str, ...] = TWINS
    dataset: str = QUICK_DATASET
    recipe: Recipe = field(default_factory=quick_recipe)
    train_size: int = 4000
    test_size: int = 500
    eval_every: int = 50  # steps between test-error checkpoints (0: only at the end)
    snapshot_every: int = 20  # steps between gradient / residual-ratio snapshots (0: never)
    probe_size: int = 32  # images in the fixed batch used for residual ratios
    lr_overrides: dict[str, float] = field(default_factory=dict)  # run label -> learning rate
    precision: str = "auto"  # auto (bfloat16 where the hardware has it natively), bf16 or fp32
    image_size: int = QUICK_IMAGE_SIZE  # pixels: 16 (a quarter of the work of 32) or 32
    folder: str | None = None  # for dataset "folder": the path (default: $RESNET_VIZ_RACE_FOLDER); never from visitors

    def __post_init__(self):
        self.depths = tuple(sorted({int(d) for d in self.depths}))
        self.twins = tuple(t for t in TWINS if t in self.twins)
        if not self.depths or not self.twins:
            raise ValueError("a race needs at least one depth and one twin")
        for d in self.depths:
            if d < 8 or (d - 2) % 6 or d > MAX_DEPTH:
                raise ValueError(f"depths must be 6n+2 between 8 and {MAX_DEPTH} (20, 32, 44, 56, 110), got {d}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.eval_every < 0 or self.snapshot_every < 0:
            raise ValueError("eval_every and snapshot_every must be >= 0")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recipe"] = self.recipe.to_dict()
        d["depths"], d["twins"] = list(self.depths), list(self.twins)
        return d


def run_label(arch: str, depth: int) -> str:
    return f"{'ResNet' if arch == 'resnet' else 'Plain'}-{depth}"


# -- one run --------------------------------------------------------------------------------------------

class Run:
    """One network in a race, with its metrics. ``history`` rows are appended by the worker only."""

    def __init__(self, model: TwinNet, recipe: Recipe, depth: int, lr: float | None = None):
        self.model = model
        self.arch = model.twin
        self.depth = depth
        self.label = run_label(self.arch, depth)
        self.recipe = recipe if lr is None else replace(recipe, lr=lr)
        self.optimizer = make_optimizer(model, self.recipe, fused=True)
        self.status = "waiting"  # waiting | running | finished | diverged | stopped
        self.history: list[dict] = []
        self.snapshots: list[dict] = []
        self.train_seconds = 0.0
        self.images = 0
        # Main-path weights (as on Gradient flow) whose gradient norms the snapshots read after backward.
        self.grad_layers: list[tuple[str, torch.Tensor]] = main_path_weights(model)

    def to_dict(self) -> dict:
        return {"arch": self.arch, "depth": self.depth, "label": self.label, "status": self.status,
                "lr": self.recipe.lr, "steps_done": len(self.history), "train_seconds": round(self.train_seconds, 2),
                "history": self.history, "snapshots": self.snapshots}


def instrumented_step(run: Run, x: torch.Tensor, y: torch.Tensor, lr: float, *, want_grads: bool,
                      autocast) -> tuple[float, float, dict | None]:
    """One optimiser step of ``run``: ``(loss, error, grad_norms or None)``.

    Gradient norms are read between backward and the update, so they cost no extra pass.
    """
    grads: dict[str, float] = {}

    def read_grad_norms() -> None:
        norms = torch.stack([p.grad.detach().float().norm() if p.grad is not None else torch.zeros(())
                             for _, p in run.grad_layers]).tolist()
        grads.update({name: round(v, 6) for (name, _), v in zip(run.grad_layers, norms)})

    loss, error = train_step(run.model, run.optimizer, x, y, lr, autocast=autocast,
                             before_update=read_grad_norms if want_grads else None)
    return loss, error, grads if want_grads else None


@torch.no_grad()
def residual_ratios(model: TwinNet, x: torch.Tensor) -> dict[str, float]:
    """Per block ||F(x)|| / ||x|| on a probe batch, as on *Residual vs identity*.

    Eval mode, so BatchNorm's running statistics are used and left untouched.
    """
    with eval_mode(model):
        return {e["name"]: round(e["ratio"], 6) for e in block_contributions(model, x, details=False)}


# -- the scheduler ------------------------------------------------------------------------------------------

class RaceScheduler(Slots):
    """Lets at most ``limit`` races train at once; the rest wait first come, first served."""

    def __init__(self, limit: int = 1):
        super().__init__(limit)

    @property
    def limit(self) -> int:
        return self.capacity


_default_scheduler: RaceScheduler | None = None
_default_lock = threading.Lock()


def default_scheduler() -> RaceScheduler:
    """The server-wide scheduler; its limit comes from ``$RESNET_VIZ_MAX_RACES`` (default 1)."""
    global _default_scheduler
    with _default_lock:
        if _default_scheduler is None:
            _default_scheduler = RaceScheduler(max(1, int(os.environ.get(MAX_RACES_ENV, "1"))))
        return _default_scheduler


# -- the race ------------------------------------------------------------------------------------------------

class Race:
    """A race in a worker thread. ``start()``, then poll :meth:`progress` and :meth:`to_dict`.

    ``stop()`` is idempotent and returns at once; the worker notices within one training step.
    """

    def __init__(self, config: RaceConfig | None = None, *, device: torch.device | str | None = None,
                 scheduler: RaceScheduler | None = None, data: RaceData | None = None):
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
        # What the race computes in, resolved for the device ("bf16" or "fp32"), and its autocast.
        self.precision = resolve_precision(self.device, self.config.precision)
        self._autocast = autocast_for(self.device, self.precision)
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

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
            self.status = "preparing"
            self._prepare()
            self._train()
        except DatasetUnavailable as e:
            self.status, self.message = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - the UI shows the message instead of a traceback
            self.status, self.message = "failed", f"The race stopped with an error: {e}"
        finally:
            if acquired:
                self.scheduler.release()

    def _prepare(self) -> None:
        cfg = self.config
        if self.data is None:
            self.data = load_race_data(cfg.dataset, train_size=cfg.train_size, test_size=cfg.test_size,
                                       folder=cfg.folder, image_size=cfg.image_size)
        # NHWC convolutions: faster on CUDA (tensor cores) and on the CPU too (oneDNN, 10-20% on ResNet-20/56).
        fmt = torch.contiguous_format if self.device.type == "mps" else torch.channels_last
        d = self.data
        self._train_x = d.train_x.to(self.device).contiguous(memory_format=fmt)
        self._train_y = d.train_y.to(self.device)
        self._test_x = d.test_x.to(self.device).contiguous(memory_format=fmt)
        self._test_y = d.test_y.to(self.device)
        self._probe = self._train_x[:cfg.probe_size]
        runs = []
        for depth in cfg.depths:
            twins = build_twins("cifar", depth=depth, num_classes=len(d.classes), seed=cfg.recipe.seed)
            for model in twins:
                if model.twin in cfg.twins:
                    model.to(self.device, memory_format=fmt).train()
                    label = run_label(model.twin, depth)
                    runs.append(Run(model, cfg.recipe, depth, cfg.lr_overrides.get(label)))
        self.runs = runs

    def _train(self) -> None:
        self.status = "running"
        self.started_at = time.perf_counter()
        for run in self.runs:
            run.status = "running"
        groups, threads_each = self._plan_workers()
        release_openmp_threads()  # this thread's idle pool (from preparing the data) would slow the workers'
        with Crew(len(groups), threads_each) as crew:
            self._train_steps(crew, groups)
        stopped = self._stop.is_set()
        for run in self.runs:
            if run.status == "running":
                run.status = "stopped" if stopped else "finished"
        self.status = "stopped" if stopped else "finished"
        if self.started_at is not None:
            self.elapsed_s = time.perf_counter() - self.started_at

    def _plan_workers(self) -> tuple[list[list[Run]], int]:
        """Runs grouped per worker thread, and each worker's CPU threads.

        On the CPU the runs of a step train side by side, one worker per core: a race's small convolutions
        use extra cores poorly (a ResNet-56 step at 16 px ran 1.2x faster on 2 threads than on 1), while
        two runs on one core each got 1.7x the throughput of one after the other on 2 threads. Longest runs
        first, each onto the least loaded worker, so twins of one depth train at the same time.
        On a GPU the runs take turns (they share one device).
        """
        if self.device.type != "cpu":
            return [list(self.runs)], 0
        threads = max(1, torch.get_num_threads())
        workers = max(1, min(threads, len(self.runs)))
        groups: list[list[Run]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for run in sorted(self.runs, key=lambda r: -r.depth):
            i = loads.index(min(loads))
            groups[i].append(run)
            loads[i] += run.depth
        return groups, threads // workers

    def _train_steps(self, crew: "Crew", groups: list[list[Run]]) -> None:
        cfg, recipe = self.config, self.config.recipe
        window: list[tuple[float, int]] = []  # (time, images) of recent steps, for images/s
        for step, idx in enumerate(batch_indices(len(self._train_x), recipe)):
            if not self._wait_if_paused():
                break
            x, y = self._train_x[idx], self._train_y[idx]
            want_snapshot = cfg.snapshot_every > 0 and (step % cfg.snapshot_every == 0 or step == recipe.steps - 1)
            want_eval = (cfg.eval_every > 0 and (step + 1) % cfg.eval_every == 0) or step == recipe.steps - 1
            t0 = time.perf_counter()

            def step_group(group: list[Run]) -> int:
                images = 0
                for run in group:
                    if run.status == "running" and not self._stop.is_set():
                        self._step_run(run, step, x, y, want_snapshot, want_eval)
                        images += len(idx)
                return images

            images = sum(crew.map(step_group, groups))
            if self._stop.is_set():
                break
            now = time.perf_counter()
            window = (window + [(now - t0, images)])[-20:]
            busy = sum(t for t, _ in window)
            self.images_per_second = sum(n for _, n in window) / busy if busy > 0 else 0.0
            self.step = step + 1
            self.elapsed_s = now - self.started_at
            if not any(run.status == "running" for run in self.runs):
                break

    def _wait_if_paused(self) -> bool:
        paused_at = None
        while not self._resume.wait(0.1):
            if paused_at is None:
                paused_at, self.status = time.perf_counter(), "paused"
        if paused_at is not None:
            self.started_at += time.perf_counter() - paused_at  # ETA and elapsed leave out the pause
            if not self._stop.is_set():
                self.status = "running"
        return not self._stop.is_set()

    def _step_run(self, run: Run, step: int, x, y, want_snapshot: bool, want_eval: bool) -> None:
        lr = run.recipe.lr_at(step)
        t0 = time.perf_counter()
        loss, error, grads = instrumented_step(run, x, y, lr, want_grads=want_snapshot, autocast=self._autocast)
        run.train_seconds += time.perf_counter() - t0
        run.images += len(y)
        row = {"step": step + 1, "train_loss": round(loss, 5), "train_error": round(error, 5),
               "test_error": None, "lr": round(lr, 6)}
        if not math.isfinite(loss):
            run.status = "diverged"
            run.history.append(row)
            return
        if want_eval:
            t0 = time.perf_counter()
            error = self._test_error(run.model)
            with self._lock:  # workers finish their evaluations at the same time
                self.test_seconds += time.perf_counter() - t0
            row["test_error"] = None if error is None else round(error, 5)
        run.history.append(row)
        if want_snapshot:
            with self._autocast():
                ratios = residual_ratios(run.model, self._probe)
            run.snapshots.append({"step": step + 1, "grad_norms": grads, "ratios": ratios})

    def _test_error(self, model: TwinNet) -> float | None:
        """Test error, in chunks so Stop is honoured within a chunk; None when stopped midway."""
        wrong, n = 0.0, len(self._test_x)
        for i in range(0, n, EVAL_CHUNK):
            if self._stop.is_set():
                return None
            x, y = self._test_x[i:i + EVAL_CHUNK], self._test_y[i:i + EVAL_CHUNK]
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
        return {"status": self.status, "step": self.step, "total": total, "fraction": self.step / total,
                "eta_s": eta, "images_per_second": self.images_per_second, "elapsed_s": self.elapsed_s,
                "queue_position": self.queue_position(), "message": self.message}

    def to_dict(self) -> dict:
        """The race as JSON-ready data (safe to call while it trains: lists are only appended to)."""
        d = self.data
        return {"format": RACE_FORMAT, "version": RACE_VERSION, "status": self.status,
                "dataset": {"name": self.config.dataset, "description": d.description if d else "",
                            "classes": d.classes if d else []},
                "recipe": {**self.config.recipe.to_dict(), "precision": self.precision},
                "config": self.config.to_dict(), "device": describe_device(self.device),
                "precision": describe_precision(self.device, self.precision), "elapsed_s": round(self.elapsed_s, 2),
                "runs": [{**run.to_dict(), "history": list(run.history), "snapshots": list(run.snapshots)}
                         for run in self.runs]}


# -- worker threads -----------------------------------------------------------------------------------------

class Crew:
    """``workers`` threads, each with ``threads_each`` CPU threads for PyTorch, that run one function on
    several groups at once (:meth:`map`). With one worker, :meth:`map` runs in the calling thread.

    PyTorch's thread count is per thread once a thread has run an op, but a new thread starts from the
    last count set anywhere: each worker sets its own and runs an op at once, then the crew puts the
    process-wide count back, so threads started later (a server's page scripts) keep the default.
    """

    def __init__(self, workers: int, threads_each: int):
        self._inbox: list[queue.Queue] = []
        self._outbox: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        if workers <= 1:
            return
        default = torch.get_num_threads()
        ready = threading.Barrier(workers + 1)
        for i in range(workers):
            inbox: queue.Queue = queue.Queue()
            thread = threading.Thread(target=self._work, args=(i, inbox, threads_each, ready),
                                      name=f"training-race-worker-{i}", daemon=True)
            self._inbox.append(inbox)
            self._threads.append(thread)
            thread.start()
        ready.wait()
        torch.set_num_threads(default)

    def _work(self, index: int, inbox: queue.Queue, threads: int, ready: threading.Barrier) -> None:
        torch.set_num_threads(max(1, threads))
        torch.get_num_threads()  # fixes this thread's count before the default is put back
        ready.wait()
        while (job := inbox.get()) is not None:
            fn, arg = job
            try:
                self._outbox.put((index, True, fn(arg)))
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                self._outbox.put((index, False, e))

    def map(self, fn: Callable, groups: list) -> list:
        """``[fn(g) for g in groups]``, one group per worker, side by side; re-raises a worker's error."""
        if not self._threads:
            return [fn(g) for g in groups]
        if len(groups) > len(self._threads):
            raise ValueError("more groups than workers")
        for inbox, group in zip(self._inbox, groups):
            inbox.put((fn, group))
        results: list = [None] * len(groups)
        error = None
        for _ in groups:
            index, ok, value = self._outbox.get()
            if ok:
                results[index] = value
            else:
                error = error or value
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        for inbox in self._inbox:
            inbox.put(None)
        for thread in self._threads:
            thread.join()
        self._inbox, self._threads = [], []

    def __enter__(self) -> "Crew":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_race(config: RaceConfig | None = None, *, device: torch.device | str | None = None,
             scheduler: RaceScheduler | None = None, on_progress: Callable[[Race], None] | None = None,
             poll_s: float = 0.5, save_dir: str | os.PathLike | None = None) -> dict:
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


def save_race_models(race: Race, folder: str | os.PathLike) -> list[Path]:
    """Save each depth's trained twins as ``race-<depth>.safetensors`` (readable by ``load_checkpoint``)."""
    from .checkpoints import save_twins

    by_depth: dict[int, dict[str, Run]] = {}
    for run in race.runs:
        by_depth.setdefault(run.depth, {})[run.arch] = run
    written = []
    for depth, runs in sorted(by_depth.items()):
        if set(runs) != {"resnet", "plain"}:
            continue  # a lone twin has no partner to save with
        resnet, plain = runs["resnet"].model, runs["plain"].model
        build = {k: v for k, v in resnet.config.items() if k != "weights"}
        info = {"name": f"race-{depth}", "build": build, "recipe": race.config.recipe.to_dict(),
                "class_names": list(race.data.classes) if race.data else None,
                "dataset": race.data.description if race.data else None,
                "race": {run.arch: {"status": run.status, "steps": len(run.history)} for run in runs.values()}}
        for model in (resnet, plain):
            model.eval()
        written.append(save_twins(Path(folder) / f"race-{depth}.safetensors", resnet, plain, info))
    return written


# -- results: summaries, files ------------------------------------------------------------------------------

def final_train_loss(run: dict, window: float = 0.1) -> float:
    """Mean training loss over the last ``window`` of the run's steps (single steps are noisy)."""
    losses = [r["train_loss"] for r in run["history"] if r.get("train_loss") is not None]
    if not losses:
        return float("nan")
    n = max(1, round(len(losses) * window))
    return sum(losses[-n:]) / n


def final_test_error(run: dict) -> float | None:
    errors = [r["test_error"] for r in run["history"] if r.get("test_error") is not None]
    return errors[-1] if errors else None


def summary(result: dict) -> list[dict]:
    """One row per run: label, status, steps, final training loss / error, test error."""
    rows = []
    for run in result["runs"]:
        hist = run["history"]
        tail = hist[-max(1, len(hist) // 10):] if hist else []
        rows.append({"run": run.get("label") or run_label(run["arch"], run["depth"]), "arch": run["arch"],
                     "depth": run["depth"], "status": run.get("status", ""), "steps": len(hist) and hist[-1]["step"],
                     "final_train_loss": final_train_loss(run),
                     "final_train_error": sum(r["train_error"] for r in tail) / len(tail) if tail else None,
                     "test_error": final_test_error(run)})
    return rows


# Fig. 6's checks: how far below chance (in nats) counts as "left chance", and how much higher the deeper
# ResNet's loss may end and still count as "at" the shallower one's.
LEFT_CHANCE_MARGIN = 0.05
RESNET_TIE = 0.02


def chance_loss(result: dict) -> float | None:
    """The cross-entropy of guessing: ln(number of classes), or None when the race does not say."""
    classes = (result.get("dataset") or {}).get("classes") or []
    return math.log(len(classes)) if len(classes) >= 2 else None


def fig6_checks(result: dict) -> list[dict]:
    """Both halves of He et al.'s Fig. 6 in a race, on final training losses (mean of the last 10% of steps).

    Compares the shallowest and the deepest depth that have both twins. One dict per check:
    ``{"check", "holds", "values"}`` with check one of ``plain_trained`` (the deeper plain net ends at least
    :data:`LEFT_CHANCE_MARGIN` below chance), ``plain_degrades`` (it ends above the shallower plain net),
    ``resnet_deeper_no_worse`` (the deeper ResNet ends at most :data:`RESNET_TIE` above the shallower one) and
    ``resnets_below_plain`` (at every depth the ResNet ends below its plain twin). Empty without two such depths.
    """
    loss = {(r["arch"], r["depth"]): final_train_loss(r) for r in result["runs"]}
    depths = sorted({d for (_, d) in loss if ("resnet", d) in loss and ("plain", d) in loss})
    if len(depths) < 2:
        return []
    lo, hi = depths[0], depths[-1]
    checks = []
    chance = chance_loss(result)
    if chance is not None:
        checks.append({"check": "plain_trained", "holds": loss[("plain", hi)] < chance - LEFT_CHANCE_MARGIN,
                       "values": {"plain": loss[("plain", hi)], "chance": chance, "depth": hi}})
    checks += [
        {"check": "plain_degrades", "holds": loss[("plain", hi)] > loss[("plain", lo)],
         "values": {"deep": loss[("plain", hi)], "shallow": loss[("plain", lo)], "depth": hi, "shallow_depth": lo}},
        {"check": "resnet_deeper_no_worse", "holds": loss[("resnet", hi)] <= loss[("resnet", lo)] + RESNET_TIE,
         "values": {"deep": loss[("resnet", hi)], "shallow": loss[("resnet", lo)], "depth": hi, "shallow_depth": lo}},
        {"check": "resnets_below_plain", "holds": all(loss[("resnet", d)] < loss[("plain", d)] for d in depths),
         "values": {d: (loss[("resnet", d)], loss[("plain", d)]) for d in depths}},
    ]
    return checks


def thin_history(result: dict, every: int) -> dict:
    """A copy whose histories keep every ``every``-th step, as the mean of the steps in between.

    Rows with a test error and each run's last row are kept, so checkpoints and the end survive.
    """
    if every <= 1:
        return result
    out = dict(result, runs=[])
    for run in result["runs"]:
        rows, bucket = [], []
        for i, row in enumerate(run["history"]):
            bucket.append(row)
            if row["step"] % every == 0 or row.get("test_error") is not None or i == len(run["history"]) - 1:
                merged = dict(row)
                for key in ("train_loss", "train_error"):
                    values = [r[key] for r in bucket if r.get(key) is not None and math.isfinite(r[key])]
                    merged[key] = round(sum(values) / len(values), 5) if values else row[key]
                rows.append(merged)
                bucket = []
        out["runs"].append(dict(run, history=rows))
    out["history_every"] = every
    return out


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


CSV_COLUMNS = ("run", "arch", "depth", "step", "train_loss", "train_error", "test_error", "lr")


def race_to_csv(result: dict) -> str:
    """The histories in long format: one row per run and step."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for run in result["runs"]:
        label = run.get("label") or run_label(run["arch"], run["depth"])
        for row in run["history"]:
            writer.writerow({"run": label, "arch": run["arch"], "depth": run["depth"],
                             **{k: ("" if v is None else v) for k, v in row.items()}})
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
        raise RaceFileError("This JSON is not a race file: it needs a non-empty list of \"runs\".")
    for i, run in enumerate(source["runs"]):
        if not isinstance(run, dict) or run.get("arch") not in TWINS or not isinstance(run.get("depth"), int):
            raise RaceFileError(f"Run {i + 1} needs \"arch\" (resnet or plain) and an integer \"depth\".")
        hist = run.get("history")
        if not isinstance(hist, list):
            raise RaceFileError(f"Run {i + 1} has no \"history\" list.")
        for row in hist:
            if not isinstance(row, dict) or not isinstance(row.get("step"), int) or not all(
                    row.get(k) is None or isinstance(row.get(k), (int, float))
                    for k in ("train_loss", "train_error", "test_error")):
                raise RaceFileError(f"Run {i + 1} has a history row without a numeric \"step\" and metrics.")
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
