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


def initial_twins(info: dict):
    """The initial weights of twins whose ``info`` records how they were built (``build`` with its seed)."""
    from ..models import build_twins

    build = info.get("build") if isinstance(info, dict) else None
    if not isinstance(build, dict) or "seed" not in build:
        raise ValueError("these twins do not record how their initial weights were built")
    build = {k: v for k, v in build.items() if k != "weights"}
    return build_twins(**build)
