"""What the bundled twins' landscapes are measured from: the training batch and the twins' initial weights."""

from __future__ import annotations

import functools

import torch

MAX_IMAGES = 2048


def landscape_batch(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of the bundled twins' training set (shapes, seed 1), with labels."""
    x, y = _landscape_batch(n)
    return x.clone(), y.clone()


@functools.lru_cache(maxsize=4)
def _landscape_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..bundled import TRAIN_SIZE
    from ..data import TRAIN_SEED, make_shapes

    if not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"n must be from 1 to {MAX_IMAGES}")
    x, y, _ = make_shapes(TRAIN_SIZE, seed=TRAIN_SEED)  # the set is generated whole (about 2 s), then cut
    return x[:n].clone(), y[:n].clone()


def training_batch(info: dict | None, n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of the data twins with checkpoint ``info`` were trained on.

    A race's twins record their data set and image size (``info["race_data"]``); for the bundled shapes sets
    (offline) this gives that set at that size, so their loss, surfaces and curvature are those of their own
    training data. Any other checkpoint gets :func:`landscape_batch` (the bundled twins' shapes at 32 px).
    """
    if info is None or not trained_on_offline_shapes(info):
        return landscape_batch(n)
    race_data = info["race_data"]
    if not isinstance(n, int) or not 1 <= n <= MAX_IMAGES:
        raise ValueError(f"n must be from 1 to {MAX_IMAGES}")
    from ..race.data import load_race_data

    data = load_race_data(
        race_data["name"],
        train_size=max(n, int(race_data.get("train_size", n))),
        test_size=1,
        image_size=int(race_data["image_size"]),
    )
    return data.train_x[:n].clone(), data.train_y[:n].clone()


def trained_on_offline_shapes(info: dict | None) -> bool:
    """Whether checkpoint ``info`` says its twins were trained in a race on one of the bundled shapes sets."""
    from ..race.data import SHAPES_DESCRIPTIONS

    race_data = info.get("race_data") if isinstance(info, dict) else None
    return (
        isinstance(race_data, dict)
        and race_data.get("name") in SHAPES_DESCRIPTIONS
        and isinstance(race_data.get("image_size"), int)
        and 8 <= race_data["image_size"] <= 64
    )


def fits_training_batch(model, info: dict | None) -> bool:
    """Whether :func:`training_batch` suits ``model`` (a twin with checkpoint ``info``): a race's twins on the
    bundled shapes (any size), or any 8-class RGB model at the bundled twins' 32 px."""
    from ..data import SHAPE_CLASSES

    if model.fc.out_features != len(SHAPE_CLASSES):
        return False
    return trained_on_offline_shapes(info) or (
        model.conv1.in_channels == 3 and int(model.preprocess.get("size", 0)) == 32
    )


def initial_twins(info: dict):
    """The initial weights of twins whose ``info`` records how they were built (``build`` with its seed)."""
    from ..models import build_twins

    build = info.get("build") if isinstance(info, dict) else None
    if not isinstance(build, dict) or "seed" not in build:
        raise ValueError("these twins do not record how their initial weights were built")
    build = {k: v for k, v in build.items() if k != "weights"}
    return build_twins(**build)
