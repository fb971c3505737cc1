"""``shapes``: the bundled offline data set.

Seeded, procedurally generated 32x32 RGB images of eight shape classes with a
random colour, size, rotation and position on a textured, noisy background,
with the object's mask.  The same seed always gives the same images, so the
data set ships as code rather than files.
"""

from __future__ import annotations

import numpy as np
import torch

from .i18n import _

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring", "star", "crescent", "bars"]


def shape_class_name(index: int) -> str:
    """The shapes class ``index`` named in the visitor's language."""
    return _(SHAPE_CLASSES[index])


SHAPES_MEAN = 0.5
SHAPES_STD = 0.25
# Seeds of the standard splits; train/test never overlap.
TRAIN_SEED = 1
TEST_SEED = 2
# How hard the images are. "standard" is the bundled data set (the bundled models are trained on it);
# "easy" is a variant for the quick training race: larger objects, stronger contrast, no background texture
# and little noise, so that networks learn the classes within a minute of CPU training.
SHAPE_VARIANTS = {
    "standard": {"radius": (0.22, 0.42), "contrast": 0.25, "texture": (0.03, 0.12), "noise": (0.02, 0.1)},
    "easy": {"radius": (0.32, 0.45), "contrast": 0.4, "texture": (0.0, 0.0), "noise": (0.01, 0.03)},
}


def _polygon_inside(u: np.ndarray, v: np.ndarray, sides: int) -> np.ndarray:
    """Inside a regular polygon of circumradius 1 centred at the origin."""
    angle = np.arctan2(v, u)
    r = np.hypot(u, v)
    sector = 2 * np.pi / sides
    local = np.mod(angle + np.pi / 2, sector) - sector / 2  # a vertex points up
    apothem = np.cos(np.pi / sides)
    return r * np.cos(local) <= apothem


def _star_inside(u, v, points=5, inner=0.45):
    angle = np.mod(np.arctan2(v, u) + np.pi / 2, 2 * np.pi / points)
    t = np.abs(angle / (2 * np.pi / points) - 0.5) * 2  # 1 at a tip, 0 between tips
    return np.hypot(u, v) <= inner + (1 - inner) * t**2


def _shape_mask(cls: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of class ``cls`` in unit coordinates (object roughly within radius 1)."""
    r = np.hypot(u, v)
    name = SHAPE_CLASSES[cls]
    if name == "circle":
        return r <= 0.9
    if name == "square":
        return (np.abs(u) <= 0.75) & (np.abs(v) <= 0.75)
    if name == "triangle":
        return _polygon_inside(u, v, 3)
    if name == "cross":
        return ((np.abs(u) <= 0.28) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.28) & (np.abs(u) <= 0.95))
    if name == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if name == "star":
        return _star_inside(u, v)
    if name == "crescent":
        return (r <= 0.95) & (np.hypot(u - 0.45, v) > 0.7)
    if name == "bars":
        return (np.abs(v) <= 0.9) & (np.abs(np.abs(u) - 0.55) <= 0.22)
    raise ValueError(cls)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def make_shapes_raw(
    n: int, *, seed: int, size: int = 32, variant: str = "standard"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images as uint8 N x H x W x 3, labels (int64) and masks (bool N x H x W).

    ``variant`` is a key of :data:`SHAPE_VARIANTS` ("standard": the bundled data set; "easy": see there).
    """
    if n < 0 or size < 8:
        raise ValueError("need n >= 0 and size >= 8")
    if variant not in SHAPE_VARIANTS:
        raise ValueError(f"variant must be one of {list(SHAPE_VARIANTS)}, got {variant!r}")
    look = SHAPE_VARIANTS[variant]
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPE_CLASSES), size=n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        radius = rng.uniform(*look["radius"]) * size
        cx, cy = rng.uniform(radius, size - radius, size=2)
        theta = rng.uniform(0, 2 * np.pi)
        c, s = np.cos(theta), np.sin(theta)
        dx, dy = (xx - cx) / radius, (yy - cy) / radius
        u, v = c * dx + s * dy, -s * dx + c * dy
        mask = _shape_mask(int(labels[i]), u, v)

        # Background: a base colour, a few random waves and pixel noise.
        bg = rng.uniform(0.1, 0.9, size=3)
        fg = rng.uniform(0.0, 1.0, size=3)
        while abs(_luminance(fg) - _luminance(bg)) < look["contrast"]:  # keep the object visible
            fg = rng.uniform(0.0, 1.0, size=3)
        texture = np.zeros((size, size))
        for _layer in range(3):
            kx, ky = rng.normal(0, 0.35, size=2)
            texture += np.sin(kx * xx + ky * yy + rng.uniform(0, 2 * np.pi))
        img = bg + rng.uniform(*look["texture"]) * texture[..., None]
        img = np.where(mask[..., None], fg, img)
        img = img + rng.normal(0, rng.uniform(*look["noise"]), size=img.shape)
        images[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        masks[i] = mask
    return images, labels.astype(np.int64), masks


def normalize_shapes(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W, normalised as the bundled models expect."""
    x = torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 255
    return (x - SHAPES_MEAN) / SHAPES_STD


def denormalize_shapes(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_shapes`: back to uint8 N x H x W x 3."""
    img = (x.detach().cpu() * SHAPES_STD + SHAPES_MEAN).clamp(0, 1).permute(0, 2, 3, 1)
    return (img.numpy() * 255 + 0.5).astype(np.uint8)


def make_shapes(n: int, *, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The shapes data set: ``(images, labels, masks)``.

    ``images`` is float N x 3 x size x size, normalised the way the bundled
    models expect; ``labels`` int64 N (indices into :data:`SHAPE_CLASSES`);
    ``masks`` bool N x size x size, True on the object.
    """
    images, labels, masks = make_shapes_raw(n, seed=seed, size=size)
    return normalize_shapes(images), torch.from_numpy(labels), torch.from_numpy(masks)
