"""Grid evaluation throughput of ``loss_surface`` against bare no-grad forward passes, and 21x21 grid times.

    python benchmarks/bench_landscape.py [--rounds 5] [--points 25] [--threads 2] [--full-grid] [--device cuda]
                                         [--per-pass 8]

For each bundled pair (ResNet and plain twin), the same 128 training images: round after round, a block of
``--points`` bare ``model(x)`` calls under ``torch.no_grad()`` (eval mode), then a ``loss_surface`` of
``--points`` grid points (a 5x5 grid by default; each point sets the weights to θ + α·d₁ + β·d₂ and runs one
forward pass plus the loss). The ratio is grid points per second over bare forwards per second, from
back-to-back pairs (median over rounds), so both see the same load. ``loss_surface``'s fixed cost (a private
copy of the model, the random directions) is included. ``--full-grid`` also times a whole 21x21 grid of each
twin, as the page and the CLI compute it. ``--per-pass K`` also times the grid with K grid points per forward
pass (members of one fused group, ``loss_surface(points=K)``) in the same rounds, against the same bare forwards.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import resnet_viz as rv  # noqa: E402
from resnet_viz import landscape as ls  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(model, x, n: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(n):
            model(x)
    sync(device)
    return time.perf_counter() - start


def grid(model, x, y, steps: int, device, **kw) -> float:
    sync(device)
    start = time.perf_counter()
    ls.loss_surface(model, x, y, steps=steps, span=1.0, seed=0, **kw)
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--points", type=int, default=25, help="grid points per round (a square odd grid)")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--names", nargs="+", default=["shapes-20", "shapes-56"])
    parser.add_argument("--full-grid", action="store_true", help="also time a 21x21 grid of each twin")
    parser.add_argument(
        "--per-pass",
        type=int,
        default=0,
        help="also time the grid with this many points per forward pass (a fused group)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    steps = max(3, int(round(math.sqrt(args.points))) | 1)
    n = steps * steps
    x, y = ls.landscape_batch(args.images)
    x, y = x.to(device), y.to(device)
    print(
        f"torch {torch.__version__}, {args.threads} threads, {device}, {args.images} images, "
        f"{steps}x{steps} = {n} grid points against {n} bare forwards per round, {args.rounds} rounds"
    )
    fused_head = f" {args.per_pass} points per pass: ratio (median) |" if args.per_pass > 1 else ""
    print(f"\n| model | bare forward ms | grid point ms | throughput ratio (median) | range |{fused_head}")
    print("|---|---:|---:|---:|---|" + ("---:|" if fused_head else ""))
    for name in args.names:
        resnet, plain, _info = rv.load_bundled(name, device=device)
        for model in (resnet, plain):
            model.eval()
            bare(model, x, 2, device)
            grid(model, x, y, 3, device)  # warm-up
            ratios, t_bare, t_grid, fused = [], [], [], []
            if args.per_pass > 1:
                grid(model, x, y, 3, device, points=args.per_pass)  # warm-up
            for _ in range(args.rounds):
                b = bare(model, x, n, device)
                g = grid(model, x, y, steps, device)
                if args.per_pass > 1:
                    fused.append(b / grid(model, x, y, steps, device, points=args.per_pass))
                ratios.append(b / g)
                t_bare.append(b / n)
                t_grid.append(g / n)
            label = f"{name} {model.twin}"
            print(
                f"| {label} | {statistics.median(t_bare) * 1e3:.1f} | {statistics.median(t_grid) * 1e3:.1f} | "
                f"**{statistics.median(ratios):.3f}** | {min(ratios):.3f}-{max(ratios):.3f} |"
                + (f" {statistics.median(fused):.3f} |" if fused else ""),
                flush=True,
            )
    if args.full_grid:
        print("\n| model | 21x21 grid s |")
        print("|---|---:|")
        for name in args.names:
            resnet, plain, _info = rv.load_bundled(name, device=device)
            for model in (resnet, plain):
                print(f"| {name} {model.twin} | {grid(model, x, y, 21, device):.1f} |", flush=True)


if __name__ == "__main__":
    main()
