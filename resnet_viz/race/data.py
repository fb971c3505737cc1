"""A race's data sets: the bundled shapes (cached), CIFAR-10, a server's image folder, and their descriptions."""

from __future__ import annotations

import functools
import math
import os
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes_raw, normalize_shapes
from ..i18n import N_, _

DATASETS = ("shapes-easy", "shapes", "cifar10", "folder")
IMAGE_SIZES = (16, 32)
# The image folder a server may offer; set by whoever runs the server, never by a visitor.
FOLDER_ENV = "RESNET_VIZ_RACE_FOLDER"
CACHE_DIR = Path(os.environ.get("RESNET_VIZ_CACHE", Path.home() / ".cache" / "resnet_viz"))
CIFAR_CACHE = CACHE_DIR / "cifar10"
CIFAR_HOST = ("www.cs.toronto.edu", 443)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The bundled shapes' descriptions: written in English into race files, shown translated by describe_dataset.
SHAPES_DESCRIPTIONS = {
    "shapes-easy": N_("shapes, easy variant, {size}x{size} px ({train} training images, {test} test images)"),
    "shapes": N_("shapes, {size}x{size} px ({train} training images, {test} test images)"),
}


class DatasetUnavailable(RuntimeError):
    """A data set cannot be loaded (offline, not configured, empty folder). The message says why."""


@dataclass
class RaceData:
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    description: str


def load_race_data(
    name: str = "shapes",
    *,
    train_size: int = 4000,
    test_size: int = 500,
    folder: str | Path | None = None,
    download: bool = True,
    timeout_s: float = 5.0,
    image_size: int = 32,
) -> RaceData:
    """Load a race's data set: ``"shapes-easy"`` and ``"shapes"`` (bundled, offline), ``"cifar10"`` or ``"folder"``.

    ``"folder"`` reads ``folder`` (or the path in ``$RESNET_VIZ_RACE_FOLDER``): one sub-folder of
    images per class. Images are ``image_size`` pixels square (shapes are drawn at that size, the others
    resized with antialiasing). Raises :class:`DatasetUnavailable` with a readable message on failure.
    """
    if name in SHAPES_DESCRIPTIONS:
        variant = "easy" if name == "shapes-easy" else "standard"
        tx, ty = _shapes(train_size, TRAIN_SEED, variant, image_size)
        vx, vy = _shapes(test_size, TEST_SEED, variant, image_size)
        return RaceData(
            name,
            tx,
            ty,
            vx,
            vy,
            list(SHAPE_CLASSES),
            SHAPES_DESCRIPTIONS[name].format(size=image_size, train=train_size, test=test_size),
        )
    if name == "cifar10":
        data = _load_cifar10(train_size, test_size, download=download, timeout_s=timeout_s)
    elif name == "folder":
        data = _load_folder(folder or os.environ.get(FOLDER_ENV), train_size, test_size)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if image_size != data.train_x.shape[-1]:
        data = replace(
            data,
            train_x=_resize(data.train_x, image_size),
            test_x=_resize(data.test_x, image_size),
            description=data.description.replace(" (", f", resized to {image_size}x{image_size} px (", 1),
        )
    return data


def describe_dataset(result: dict) -> str:
    """A race's data set in the current language: the bundled shapes from the race's config, any other
    data set as the race recorded it (``result`` as :meth:`Race.to_dict` or :func:`load_race` give it)."""
    config, dataset = result.get("config") or {}, result.get("dataset") or {}
    name, size = dataset.get("name"), config.get("image_size")
    if name in SHAPES_DESCRIPTIONS and size and config.get("train_size") and config.get("test_size"):
        return _(SHAPES_DESCRIPTIONS[name]).format(size=size, train=config["train_size"], test=config["test_size"])
    return dataset.get("description", "")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


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
        raw, labels_np, _masks = make_shapes_raw(n, seed=seed, size=size, variant=variant)
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
    if not present and (not download or not _can_reach(*CIFAR_HOST, timeout_s)):
        raise DatasetUnavailable(
            "CIFAR-10 is not cached on this server and cannot be downloaded "
            "(no internet connection). Use the bundled shapes data set instead."
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        train = CIFAR10(str(root), train=True, download=not present)
        test = CIFAR10(str(root), train=False, download=False)
    except Exception as e:  # noqa: BLE001 - any failure here means "not available"
        raise DatasetUnavailable(f"CIFAR-10 could not be loaded: {e}") from e

    def to_tensor(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255
        return (x - 0.5) / 0.25, torch.tensor(ds.targets)

    tx, ty = _subset(*to_tensor(train), train_size, TRAIN_SEED)
    vx, vy = _subset(*to_tensor(test), test_size, TEST_SEED)
    return RaceData(
        "cifar10", tx, ty, vx, vy, list(train.classes), f"CIFAR-10 ({len(tx)} training images, {len(vx)} test images)"
    )


def _is_image(path: str) -> bool:
    return path.lower().endswith(IMAGE_SUFFIXES)


def _load_rgb32(path: str) -> torch.Tensor | None:
    """An image as uint8 32x32x3, or None when the file cannot be read (skipped, not fatal)."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            img = opened.convert("RGB").resize((32, 32))
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
    return RaceData(
        "folder",
        x[train],
        y[train],
        x[test],
        y[test],
        list(folder.classes),
        f"image folder {root.name} ({len(train)} training images, {n_test} test images)",
    )
