"""How screenshots look with a colour-vision deficiency, or in greyscale.

Simulates dichromacy with the matrices of Machado, Oliveira & Fernandes (2009, "A physiologically-based model for
simulation of color vision deficiency", severity 1.0), applied in linear RGB; greyscale is the CIE luminance Y.

    python tools/colour_vision.py docs/screenshots/explain.png docs/screenshots/training-race.png \
        --kinds deuteranopia greyscale --out docs/screenshots/colour-vision --width 800

writes ``<name>-<kind>.png`` for each screenshot and kind (256 colours, as tools/screenshots.py saves them).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

MATRICES = {
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
}
LUMINANCE = [0.2126, 0.7152, 0.0722]
KINDS = (*MATRICES, "greyscale")


def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def simulate(image: Image.Image, kind: str) -> Image.Image:
    """``image`` as seen with ``kind`` (deuteranopia, protanopia, tritanopia) or in greyscale."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rgb = _to_linear(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)
    if kind == "greyscale":
        out = np.repeat((rgb @ np.array(LUMINANCE))[..., None], 3, axis=2)
    else:
        out = rgb @ np.array(MATRICES[kind]).T
    return Image.fromarray(np.round(_to_srgb(out) * 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=["deuteranopia"])
    parser.add_argument("--out", default=".")
    parser.add_argument("--width", type=int, default=None, help="scale each result down to this width")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for path in args.images:
        name = os.path.splitext(os.path.basename(path))[0]
        with Image.open(path) as image:
            for kind in args.kinds:
                target = os.path.join(args.out, f"{name}-{kind}.png")
                seen = simulate(image, kind)
                if args.width and seen.width > args.width:
                    seen = seen.resize((args.width, round(seen.height * args.width / seen.width)), Image.LANCZOS)
                seen.quantize(256).save(target, optimize=True)
                print(target)


if __name__ == "__main__":
    main()
