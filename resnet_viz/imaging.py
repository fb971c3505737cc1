"""Turning untrusted bytes into a model input, safely.

Every failure becomes :class:`ImageError` with a message a person can act on.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .i18n import _

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
ACCEPTED_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif")
MAX_PIXELS = 40_000_000  # decoded pixels; Pillow's bomb check fires at twice its own limit
MAX_ASPECT = 20.0
DISPLAY_MAX_SIDE = 1024
DECODE_TIMEOUT_S = 10.0
# Decoding runs here so a slow file cannot hold a page forever; the pixel limit bounds the work left behind.
_decoder = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="image-decode")


class ImageError(ValueError):
    """An upload that cannot be explained, with the reason in plain words."""


def load_image(
    data: bytes, *, max_pixels: int = MAX_PIXELS, max_side: int = DISPLAY_MAX_SIDE, timeout: float = DECODE_TIMEOUT_S
) -> Image.Image:
    """Decode an upload into an upright RGB image no larger than ``max_side``.

    Handles EXIF rotation, palette/RGBA/CMYK/16-bit/grayscale modes and the first
    frame of animations. Refuses non-images, corrupt or truncated files,
    decompression bombs (more than ``max_pixels``), extreme aspect ratios and
    files that take longer than ``timeout`` seconds to decode.
    """
    # In the caller's context, so messages come in the caller's language.
    future = _decoder.submit(contextvars.copy_context().run, _decode, data, max_pixels, max_side)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise ImageError(
            _("The image took longer than {seconds:g} s to decode and was refused.").format(seconds=timeout)
        ) from None


def _decode(data: bytes, max_pixels: int, max_side: int) -> Image.Image:
    if not data:
        raise ImageError(_("The file is empty."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            if img.format not in ACCEPTED_FORMATS:
                raise ImageError(
                    _("{format} images are not supported; use PNG, JPEG, WebP, BMP or GIF.").format(format=img.format)
                )
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(
                    _(
                        "The image is too large ({w}x{h} = {mp:.0f} megapixels); the limit is {limit:.0f} megapixels."
                    ).format(w=w, h=h, mp=w * h / 1e6, limit=max_pixels / 1e6)
                )
            if max(w, h) / max(1, min(w, h)) > MAX_ASPECT:
                raise ImageError(
                    _(
                        "The image is too elongated ({w}x{h}); the longer side may be at most {n:.0f} "
                        "times the shorter."
                    ).format(w=w, h=h, n=MAX_ASPECT)
                )
            img.seek(0)  # first frame of an animation
            if img.format == "JPEG":  # decode at reduced scale: much faster for big photos
                img.draft("RGB", (max_side, max_side))
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(_reason(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
        raise ImageError(
            _("The image could not be decoded; the file may be truncated or corrupt ({reason}).").format(reason=exc)
        ) from exc
    img = to_rgb(img)
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return img


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return _("This file is not an image we can read; use PNG, JPEG, WebP, BMP or GIF.")
    return _("The image is too large to decode safely (a possible decompression bomb).")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), "L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def resize_for_model(img: Image.Image, preprocess: dict) -> Image.Image:
    """Resize to what the model expects: an exact square, or a shorter side."""
    size = int(preprocess.get("size", 224))
    if preprocess.get("resize", "shorter") == "square":
        return img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    longest = 2 * size  # elongated images: cap the long side, the short side shrinks
    if max(nw, nh) > longest:
        f = longest / max(nw, nh)
        nw, nh = max(32, round(nw * f)), max(32, round(nh * f))
    return img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)


def image_to_tensor(img: Image.Image, preprocess: dict) -> torch.Tensor:
    """A PIL image to the normalised 1 x C x H x W tensor a model expects."""
    img = resize_for_model(to_rgb(img), preprocess)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(preprocess.get("mean", (0.5, 0.5, 0.5))).view(-1, 1, 1)
    std = torch.tensor(preprocess.get("std", (0.25, 0.25, 0.25))).view(-1, 1, 1)
    return ((x - mean) / std).unsqueeze(0)
