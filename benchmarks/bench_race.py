"""What does the race engine's instrumentation cost?

Times the engine against a minimal hand-written PyTorch loop on the same model,
data, batches, batch size and recipe (the quick race's), in one process,
interleaved round by round (hand, engine, engine with checkpoints, hand), and
prints the median throughput ratio engine / hand-written loop:

* ``instrumentation``: the engine as it races (per-step loss and error, images/s,
  gradient-norm and residual-ratio snapshots every 20 steps, a worker thread,
  stop and pause checks); the time spent measuring test error is left out;
* ``with test checkpoints``: everything, including the quick race's test-error
  evaluation (500 images every 50 steps), which is extra work rather than overhead.

``--openmp-check`` also times the hand-written loop in a worker thread with and
without releasing the main thread's idle OpenMP pool first (see
``resnet_viz.device.release_openmp_threads``, which ``Race.start`` calls).

    python benchmarks/bench_race.py [--depth 20] [--steps 200] [--batch-size 32] [--rounds 5] [--openmp-check]
"""
from __future__ import annotations

import argparse
import functools
import statistics
import threading
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_viz.models import build_twins  # noqa: E402
from resnet_viz.device import release_openmp_threads  # noqa: E402
from resnet_viz.race import QUICK_RECIPE_CPU, Race, RaceConfig, RaceScheduler, load_race_data  # noqa: E402
from resnet_viz.training import Recipe, batch_indices, make_optimizer  # noqa: E402


def hand_written(depth: int, recipe: Recipe, data) -> float:
    """Images per second of a plain PyTorch loop: forward, loss, backward, step. Nothing else."""
    model, _ = build_twins("cifar", depth=depth, num_classes=len(data.classes), seed=recipe.seed)
    model.train()
    opt = make_optimizer(model, recipe)
    batches = list(batch_indices(len(data.train_x), recipe))
    start = time.perf_counter()
    for step, idx in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = recipe.lr_at(step)
        loss = F.cross_entropy(model(data.train_x[idx]), data.train_y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return recipe.steps * recipe.batch_size / (time.perf_counter() - start)


def engine(depth: int, recipe: Recipe, data, *, eval_every: int) -> tuple[float, float]:
    """Images per second of the race engine over its training loop: (without, with) its test evaluation."""
    config = RaceConfig(depths=(depth,), twins=("resnet",), recipe=recipe, eval_every=eval_every, snapshot_every=20)
    race = Race(config, data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    images = recipe.steps * recipe.batch_size
    return images / (race.elapsed_s - race.test_seconds), images / race.elapsed_s


def in_worker_thread(fn, *, release: bool) -> float:
    if release:
        release_openmp_threads()
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--steps", type=int, default=QUICK_RECIPE_CPU.steps)
    parser.add_argument("--batch-size", type=int, default=QUICK_RECIPE_CPU.batch_size)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--openmp-check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    recipe = replace(QUICK_RECIPE_CPU, steps=args.steps, batch_size=args.batch_size)
    data = load_race_data("shapes", train_size=4000, test_size=500)
    hand_written(args.depth, replace(recipe, steps=5), data)  # warm-up
    ratios, ratios_eval, rates, threads = [], [], [], []
    for i in range(args.rounds):
        base = hand_written(args.depth, recipe, data)
        inst, _ = engine(args.depth, recipe, data, eval_every=0)
        _, full = engine(args.depth, recipe, data, eval_every=50)
        base2 = hand_written(args.depth, recipe, data)  # bracket the engine runs: load drifts on a shared machine
        ref = (base + base2) / 2
        ratios.append(inst / ref)
        ratios_eval.append(full / ref)
        rates.append((ref, inst, full))
        print(f"round {i + 1}: hand-written {ref:6.1f} img/s, engine {inst:6.1f} img/s ({inst / ref:.3f}), "
              f"with test checkpoints {full:6.1f} img/s ({full / ref:.3f})", flush=True)
        if args.openmp_check:
            run = functools.partial(hand_written, args.depth, recipe, data)
            kept, released = in_worker_thread(run, release=False), in_worker_thread(run, release=True)
            threads.append((kept / ref, released / ref))
            print(f"         hand-written in a worker thread: {kept / ref:.3f} with the main thread's OpenMP pool "
                  f"kept, {released / ref:.3f} with it released", flush=True)
    print(f"ResNet-{args.depth}, batch {args.batch_size}, {args.steps} steps, {recipe.optimizer}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"hand-written loop: {statistics.median(r[0] for r in rates):.1f} img/s")
    print(f"throughput ratio engine / hand-written (instrumentation): {statistics.median(ratios):.3f}")
    print(f"throughput ratio engine / hand-written (with test checkpoints): {statistics.median(ratios_eval):.3f}")
    if threads:
        print(f"hand-written loop in a worker thread / in the main thread: "
              f"{statistics.median(t[0] for t in threads):.3f} with the main pool kept, "
              f"{statistics.median(t[1] for t in threads):.3f} released")


if __name__ == "__main__":
    main()
