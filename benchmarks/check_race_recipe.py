"""Does the quick race's default recipe show both halves of Fig. 6 beyond the data it was chosen on?

Runs the default quick race (as ``python -m resnet_viz race`` does: depths 20 and 56, both twins, the
default recipe, precision and image size) on several seeds and data sets, and prints each race's final
training losses, its time and the four checks of :func:`resnet_viz.race.fig6_checks`:

* ``shapes-easy``: the bundled default;
* ``digits``: an image folder of printed digits 0-9 (Pillow's built-in font, random size, position,
  slant, stroke, colours and noise), written here first, read through the image-folder option as a
  teacher's folder would be;
* ``shapes``: the bundled standard shapes (the harder set of the other pages), also read as an image folder.

    python benchmarks/check_race_recipe.py [--seeds 0 1 2] [--sets shapes-easy digits shapes] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_viz.data import SHAPE_CLASSES, TRAIN_SEED, make_shapes_raw  # noqa: E402
from resnet_viz.race import (RaceConfig, RaceScheduler, final_train_loss, fig6_checks, quick_recipe,  # noqa: E402
                             run_race)

PER_CLASS = 450  # the race reads (4000 + 500) / classes images per class


def write_digit_folder(root: Path, per_class: int = PER_CLASS, size: int = 32, seed: int = 0) -> Path:
    """``root/<digit>/<n>.png``: printed digits, as large as a teacher would print them, with random size,
    offset, slant, stroke, colours (the digit's brightness differs from the background's by 80-255 levels),
    blur and noise."""
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)

    def brightness(rgb) -> float:
        return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]

    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            bg = tuple(rng.randrange(0, 256) for _ in range(3))
            while True:
                fg = tuple(rng.randrange(0, 256) for _ in range(3))
                if abs(brightness(fg) - brightness(bg)) >= 80:
                    break
            canvas = size * 2  # drawn at twice the size, then shrunk: smooth edges
            big = Image.new("RGB", (canvas, canvas), bg)
            font = ImageFont.load_default(size=rng.randrange(int(canvas * 0.7), int(canvas * 0.95)))
            draw = ImageDraw.Draw(big)
            stroke = rng.randrange(1, 4)
            left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
            x = (canvas - (right - left)) / 2 - left + rng.uniform(-canvas * 0.12, canvas * 0.12)
            y = (canvas - (bottom - top)) / 2 - top + rng.uniform(-canvas * 0.12, canvas * 0.12)
            draw.text((x, y), str(digit), fill=fg, font=font, stroke_width=stroke, stroke_fill=fg)
            big = big.rotate(rng.uniform(-15, 15), resample=Image.BILINEAR, fillcolor=bg)
            if rng.random() < 0.5:
                big = big.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
            pixels = np.asarray(big.resize((size, size), Image.BILINEAR), dtype=np.float32)
            pixels += noise.normal(0, rng.uniform(3, 12), pixels.shape)
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{n:04d}.png")
    return root


def write_shapes_folder(root: Path, per_class: int = PER_CLASS, size: int = 32) -> Path:
    """The bundled standard shapes as an image folder, ``root/<shape>/<n>.png``."""
    images, labels, _ = make_shapes_raw(per_class * len(SHAPE_CLASSES), seed=TRAIN_SEED, size=size)
    counts: dict[int, int] = {}
    for image, label in zip(images, labels):
        folder = root / SHAPE_CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        n = counts[int(label)] = counts.get(int(label), 0) + 1
        Image.fromarray(image).save(folder / f"{n:04d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=["shapes-easy", "digits", "shapes"])
    parser.add_argument("--out", type=Path, help="also write each race's JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="race-recipe-"))
    folders = {}
    if "digits" in args.sets:
        folders["digits"] = write_digit_folder(work / "digits")
    if "shapes" in args.sets:
        folders["shapes"] = write_shapes_folder(work / "shapes")
    recipe = quick_recipe()
    print(f"recipe: {recipe.to_dict()}")
    rows = []
    for name in args.sets:
        for seed in args.seeds:
            dataset = "shapes-easy" if name == "shapes-easy" else "folder"
            folder = str(folders[name]) if name in folders else None
            config = RaceConfig(dataset=dataset, folder=folder, recipe=replace(recipe, seed=seed))
            start = time.perf_counter()
            result = run_race(config, scheduler=RaceScheduler(1))
            wall = time.perf_counter() - start
            loss = {r["label"]: final_train_loss(r) for r in result["runs"]}
            checks = {c["check"]: c["holds"] for c in fig6_checks(result)}
            rows.append((name, seed, all(checks.values())))
            print(f"{name:12s} seed {seed}: {wall:5.1f} s, " + ", ".join(f"{k} {v:.3f}" for k, v in loss.items())
                  + " | " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()), flush=True)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{name}-seed{seed}.json").write_text(json.dumps(result))
    for name in args.sets:
        agree = [seed for n, seed, ok in rows if n == name and ok]
        print(f"{name}: both halves of Fig. 6 on {len(agree)} of {len(args.seeds)} seeds {agree}")


if __name__ == "__main__":
    main()
