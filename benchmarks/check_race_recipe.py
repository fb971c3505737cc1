"""Does the quick race's default recipe show both halves of Fig. 6 beyond the data it was chosen on?

Runs the default quick race (as ``python -m resnet_viz race`` does: depths 20 and 56, both twins, 3 seeds of
each, the default recipe, precision, engine and image size) on several data sets, and prints each net's final
training loss (mean, lowest and highest seed), the race's time and the four checks of
:func:`resnet_viz.race.fig6_checks` on the seed means, with how many seeds show each on their own:

* ``shapes-easy``: the bundled default;
* ``digits``: an image folder of printed digits 0-9 (Pillow's built-in font, random size, position,
  slant, stroke, colours and noise), written here first, read through the image-folder option as a
  teacher's folder would be;
* ``shapes``: the bundled standard shapes (the harder set of the other pages), also read as an image folder.

    python benchmarks/check_race_recipe.py [--seeds 3] [--seed 0] [--sets shapes-easy digits shapes] [--out DIR]
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
from resnet_viz.race import (
    RaceConfig,
    RaceScheduler,
    fig6_checks,
    quick_recipe,
    run_race,  # noqa: E402
    seed_summary,
)

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
    parser.add_argument("--seeds", type=int, default=RaceConfig().seeds, help="seeds per net (default: the app's)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--sets", nargs="+", default=["shapes-easy", "digits", "shapes"])
    parser.add_argument("--out", type=Path, help="also write each race's JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="race-recipe-"))
    folders = {}
    if "digits" in args.sets:
        folders["digits"] = write_digit_folder(work / "digits")
    if "shapes" in args.sets:
        folders["shapes"] = write_shapes_folder(work / "shapes")
    recipe = replace(quick_recipe(), seed=args.seed)
    print(f"recipe: {recipe.to_dict()}, seeds {args.seed}-{args.seed + args.seeds - 1}")
    for name in args.sets:
        dataset = "shapes-easy" if name == "shapes-easy" else "folder"
        folder = str(folders[name]) if name in folders else None
        config = RaceConfig(dataset=dataset, folder=folder, recipe=recipe, seeds=args.seeds)
        start = time.perf_counter()
        result = run_race(config, scheduler=RaceScheduler(1))
        wall = time.perf_counter() - start
        print(f"{name}: {wall:.0f} s wall, {result['engine']} engine, {result['precision']}")
        for row in seed_summary(result):
            print(
                f"  {row['run']:10s} final training loss {row['final_train_loss']:.3f} "
                f"(seeds {row['min_train_loss']:.3f}-{row['max_train_loss']:.3f})"
            )
        for check in fig6_checks(result):
            print(
                f"  {check['check']:24s} on the means: {'yes' if check['holds'] else 'NO ':3s}  "
                f"seeds that show it alone: {check['seeds_agree']} of {check['seeds']}",
                flush=True,
            )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
