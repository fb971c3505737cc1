"""What does the race engine's instrumentation cost?

Times the engine against a minimal hand-written PyTorch loop on the same model,
data, batches and batch size, in one process, interleaved round by round, and
prints the median throughput ratio engine / hand-written loop:

* ``instrumented``: the engine as it races (per-step loss and error, images/s,
  gradient-norm and residual-ratio snapshots every 50 steps), test checkpoints off;
* ``with test checkpoints``: the same plus the quick race's test-error evaluation
  (500 images every 50 steps), which is extra work rather than overhead.

    python benchmarks/bench_race.py [--depth 20] [--steps 60] [--batch-size 32] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_viz.models import build_twins  # noqa: E402
from resnet_viz.race import Race, RaceConfig, RaceScheduler, load_race_data  # noqa: E402
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


def engine(depth: int, recipe: Recipe, data, *, eval_every: int) -> float:
    """Images per second of the race engine, over its whole training loop (checkpoints included)."""
    config = RaceConfig(depths=(depth,), twins=("resnet",), recipe=recipe, eval_every=eval_every, snapshot_every=50)
    race = Race(config, data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    return recipe.steps * recipe.batch_size / race.elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    recipe = Recipe(steps=args.steps, batch_size=args.batch_size, lr=0.1, warmup_steps=10, weight_decay=5e-4)
    data = load_race_data("shapes", train_size=4000, test_size=500)
    hand_written(args.depth, Recipe(steps=5, batch_size=args.batch_size), data)  # warm-up
    ratios, ratios_eval, rates = [], [], []
    for i in range(args.rounds):
        base = hand_written(args.depth, recipe, data)
        inst = engine(args.depth, recipe, data, eval_every=0)
        full = engine(args.depth, recipe, data, eval_every=50)
        base2 = hand_written(args.depth, recipe, data)  # bracket the engine runs: load drifts on a shared machine
        ref = (base + base2) / 2
        ratios.append(inst / ref)
        ratios_eval.append(full / ref)
        rates.append((ref, inst, full))
        print(f"round {i + 1}: hand-written {ref:6.1f} img/s, engine {inst:6.1f} img/s ({inst / ref:.3f}), "
              f"with test checkpoints {full:6.1f} img/s ({full / ref:.3f})", flush=True)
    print(f"ResNet-{args.depth}, batch {args.batch_size}, {args.steps} steps, {torch.get_num_threads()} threads, "
          f"median of {args.rounds} rounds")
    print(f"hand-written loop: {statistics.median(r[0] for r in rates):.1f} img/s")
    print(f"throughput ratio engine / hand-written (instrumentation): {statistics.median(ratios):.3f}")
    print(f"throughput ratio engine / hand-written (with test checkpoints): {statistics.median(ratios_eval):.3f}")


if __name__ == "__main__":
    main()
