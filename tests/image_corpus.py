"""Awkward and hostile image files, generated on the fly (nothing is shipped)."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo(w=64, h=48, mode="RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = [250, 20, 20]  # a red quadrant marks the top-left corner
    return Image.fromarray(arr).convert(mode)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _exif_rotated() -> bytes:
    img = _photo(64, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return _save(img, "JPEG", exif=exif)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 0, 255))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    img = _photo().convert("P")
    return _save(img, "PNG", transparency=0)


def _sixteen_bit() -> bytes:
    arr = (np.linspace(0, 65535, 48 * 64).reshape(48, 64)).astype(np.uint16)
    img = Image.fromarray(arr)  # uint16 -> mode I;16
    assert img.mode.startswith("I;16")
    return _save(img, "PNG")


# name -> (file name, bytes, expected size (w, h) after loading, or None when it must be refused)
def good_files() -> dict:
    photo = _photo()
    return {
        "png": ("a.png", _save(photo, "PNG"), (64, 48)),
        "jpeg": ("a.jpg", _save(photo, "JPEG"), (64, 48)),
        "webp": ("a.webp", _save(photo, "WEBP"), (64, 48)),
        "bmp": ("a.bmp", _save(photo, "BMP"), (64, 48)),
        "gif-animated": ("a.gif", _animated_gif(), (40, 30)),
        "tiny-1x1": ("tiny.png", _save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"), (1, 1)),
        "large": ("big.jpg", _save(Image.new("RGB", (6000, 4000), (90, 120, 200)), "JPEG", quality=50), (1024, 683)),
        "elongated": ("wide.png", _save(_photo(1000, 60), "PNG"), (1000, 60)),
        "16-bit": ("deep.png", _sixteen_bit(), (64, 48)),
        "cmyk": ("cmyk.jpg", _save(photo.convert("CMYK"), "JPEG"), (64, 48)),
        "palette-transparent": ("p.png", _palette_with_transparency(), (64, 48)),
        "rgba": ("rgba.png", _save(_photo(mode="RGBA"), "PNG"), (64, 48)),
        "grayscale": ("gray.png", _save(_photo(mode="L"), "PNG"), (64, 48)),
        "exif-rotated": ("rot.jpg", _exif_rotated(), (32, 64)),
    }


def bad_files() -> dict:
    png = _save(_photo(), "PNG")
    jpeg = _save(_photo(256, 256), "JPEG")
    return {
        "not-an-image": ("notes.png", b"this is plain text, not a picture\n" * 10),
        "empty": ("empty.png", b""),
        "truncated-png": ("cut.png", png[: len(png) // 2]),
        "truncated-jpeg": ("cut.jpg", jpeg[: len(jpeg) // 3]),
        "corrupt": ("noise.png", png[:16] + bytes(np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8))),
        "bomb-over-limit": ("bomb.png", _png_header_only(9000, 9000)),
        "bomb-pillow": ("bomb2.png", _png_header_only(30000, 30000)),
        "too-elongated": ("line.png", _save(Image.new("RGB", (2000, 10)), "PNG")),
        "tiff": ("a.png", _save(_photo(), "TIFF")),
    }
