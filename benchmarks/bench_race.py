"""What does the race engine's instrumentation cost?

Times the engine against a minimal hand-written PyTorch loop on the same model,
data, batches, batch size, recipe (the quick race's) and memory format
(channels_last, as the engine trains on the CPU and CUDA), in one process, and
prints throughput ratios engine / hand-written loop:

* ``step by step``: the engine races in its worker thread and, before each of its
  steps, the same thread runs one hand-written step on a twin model. Both see the
  same load at the same moment, so this ratio is immune to the drift of a shared
  machine. Includes snapshots every 20 steps; the test evaluation is left out.
* ``whole loops``: round by round, a hand-written loop, the engine, the engine
  with test checkpoints, a hand-written loop again (the two bracket the engine);
  ``instrumentation`` leaves out the time spent measuring test error,
  ``with test checkpoints`` includes it (500 images every 50 steps: extra work
  rather than overhead).

``--memory-format-check`` also times the hand-written loop on NCHW (contiguous)
tensors, the layout most hand-written loops use, step by step against channels_last. ``--openmp-check`` also times
the hand-written loop in a worker thread with and without releasing the main
thread's idle OpenMP pool first (see ``resnet_viz.device.release_openmp_threads``,
which ``Race.start`` calls).

* ``vs float32``: the engine at its automatic precision (bfloat16 autocast on CPUs with AVX-512 BF16 or AMX)
  against the same hand-written loop in float32, step by step: what the automatic choice buys.

``--race`` times the whole quick race instead (both twins at depths 20 and 56 by default, ``--race-depths``): the
engine as the CLI runs it (runs side by side on the CPU's cores, test checkpoints and snapshots included, wall
clock) against a hand-written loop that trains the same networks one step of each in turn, in float32 and in
the engine's automatic precision; ``--device cuda`` runs both on the GPU.

    python benchmarks/bench_race.py [--depth 20] [--steps 400] [--batch-size 32] [--rounds 3]
                                    [--memory-format-check] [--openmp-check]
    python benchmarks/bench_race.py --race [--race-depths 20 56] [--steps 150] [--rounds 3] [--device cuda]
    python benchmarks/bench_race.py --seeds [--race-depths 20 56] [--steps 60] [--rounds 2] [--device cuda]

``--seeds`` times, in one run, the quick race with 1 seed per net and with 3 seeds per net (12 nets), each with
every engine and precision a race chooses from (``resnet_viz.race.autotune``: the fused engine of
``resnet_viz.fused``, each depth's twins and seeds as one grouped network, or the unfused one; bfloat16 where the
CPU has it natively, float32): wall seconds, test checkpoints and snapshots included. Then the time a quick race
spends measuring its choice on a machine that has not measured it before.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import sync  # noqa: E402

from resnet_viz.device import autocast_for, describe_device, release_openmp_threads, resolve_precision  # noqa: E402
from resnet_viz.models import TWINS, build_twins  # noqa: E402
from resnet_viz.race import (
    QUICK_DATASET,
    QUICK_IMAGE_SIZE,
    QUICK_RECIPE,
    Race,
    RaceConfig,  # noqa: E402
    RaceScheduler,
    load_race_data,
)
from resnet_viz.training import Recipe, batch_indices, make_optimizer  # noqa: E402

CHANNELS_LAST, NCHW = torch.channels_last, torch.contiguous_format


class HandLoop:
    """A plain PyTorch training loop: forward, loss, backward, step. Nothing else."""

    def __init__(
        self,
        depth: int,
        recipe: Recipe,
        data,
        memory_format=CHANNELS_LAST,
        precision: str = "auto",
        twin: str = "resnet",
        device: torch.device = torch.device("cpu"),
    ):
        self.recipe = recipe
        self.autocast = autocast_for(device, resolve_precision(device, precision))
        resnet, plain = build_twins("cifar", depth=depth, num_classes=len(data.classes), seed=recipe.seed)
        self.model = (resnet if twin == "resnet" else plain).to(device, memory_format=memory_format).train()
        self.opt = make_optimizer(self.model, recipe)
        self.x = data.train_x.to(device).contiguous(memory_format=memory_format)
        self.y = data.train_y.to(device)
        self.batches = [idx.to(device) for idx in batch_indices(len(self.x), recipe)]

    def step(self, step: int) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.recipe.lr_at(step)
        idx = self.batches[step]
        with self.autocast():
            loss = F.cross_entropy(self.model(self.x[idx]).float(), self.y[idx])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def hand_written(depth: int, recipe: Recipe, data) -> float:
    """Images per second of the hand-written loop."""
    loop = HandLoop(depth, recipe, data)
    start = time.perf_counter()
    for step in range(recipe.steps):
        loop.step(step)
    return recipe.steps * recipe.batch_size / (time.perf_counter() - start)


def hand_written_race(recipe: Recipe, data, depths, device: torch.device, precision: str) -> float:
    """Images per second of a hand-written loop training the race's nets, one step of each in turn."""
    loops = [HandLoop(d, recipe, data, precision=precision, twin=t, device=device) for d in depths for t in TWINS]
    sync(device)
    start = time.perf_counter()
    for step in range(recipe.steps):
        for loop in loops:
            loop.step(step)
    sync(device)
    return recipe.steps * recipe.batch_size * len(loops) / (time.perf_counter() - start)


def engine_race(
    recipe: Recipe, data, depths, device: torch.device, *, eval_every: int, precision: str = "auto"
) -> float:
    """Images per second of the race engine over the whole race, test checkpoints included (wall clock)."""
    config = RaceConfig(
        depths=depths, recipe=recipe, eval_every=eval_every, snapshot_every=20, precision=precision, seeds=1
    )
    race = Race(config, device=device, data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    return sum(run.images for run in race.runs) / race.elapsed_s


def seeded_race(
    recipe: Recipe, data, depths, device: torch.device, *, seeds: int, engine: str, precision: str = "auto"
) -> tuple[float, str]:
    """Wall seconds of a whole race with ``seeds`` seeds per net (test checkpoints and snapshots included) and
    the engine it trained with."""
    config = RaceConfig(depths=depths, recipe=recipe, seeds=seeds, engine=engine, precision=precision)
    race = Race(config, device=device, data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    return race.elapsed_s, "fused" if race.fused else "unfused"


def probe_cost(data, depths, device: torch.device, *, seeds: int, precision: str):
    """Wall seconds a quick race of ``seeds`` seeds spends choosing its engine and precision on a machine that has
    not measured it before, and the choice."""
    import tempfile

    from resnet_viz.race import autotune
    from resnet_viz.race.engine import measure_candidate

    config = RaceConfig(depths=depths, recipe=QUICK_RECIPE, seeds=seeds, precision=precision)
    autotune.forget_choices()
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        choice = autotune.choose_engine(
            config,
            device,
            cache_dir=cache,
            measure=lambda cfg, fused, prec: measure_candidate(cfg, device, data, fused, prec),
        )
        spent = time.perf_counter() - start
    autotune.forget_choices()
    return spent, choice


def seed_rounds(args, recipe: Recipe, data, device: torch.device) -> None:
    """The quick race with 1 seed and with 3 seeds per net, with every engine and precision the race chooses
    from, round by round; and what choosing costs a race."""
    from resnet_viz.race.autotune import candidate_name, candidates

    depths = tuple(args.race_depths)
    race = functools.partial(seeded_race, data=data, depths=depths, device=device)
    race(replace(recipe, steps=3), seeds=3, engine="fused", precision="fp32")  # warm-up
    options = {
        seeds: candidates(RaceConfig(depths=depths, seeds=seeds, precision=args.precision), device) for seeds in (1, 3)
    }
    times: dict[tuple[int, str], list[float]] = {}
    for i in range(args.rounds):
        line = []
        for seeds in (1, 3):
            for fused, precision in options[seeds]:
                wall, _engine = race(recipe, seeds=seeds, engine="fused" if fused else "unfused", precision=precision)
                times.setdefault((seeds, candidate_name(fused, precision)), []).append(wall)
                line.append(f"{seeds} seed{'s' if seeds > 1 else ''} {candidate_name(fused, precision)} {wall:.1f} s")
        print(f"round {i + 1}: " + "; ".join(line), flush=True)
    med = {key: statistics.median(v) for key, v in times.items()}
    nets = len(depths) * len(TWINS)
    print(
        f"seeds: depths {list(depths)} x both twins, batch {recipe.batch_size}, {args.image_size} px, "
        f"{recipe.steps} steps, {recipe.optimizer}, {describe_device(device)}, median of {args.rounds} rounds "
        f"(wall seconds of the race's training, test checkpoints and snapshots included)"
    )
    for key in sorted(med):
        print(f"  {key[0]} seed(s), {key[1]:14s} {med[key]:7.1f} s")
    best = {seeds: min((v, name) for (s, name), v in med.items() if s == seeds) for seeds in (1, 3)}
    for seeds in (1, 3):
        print(f"fastest with {seeds} seed(s): {best[seeds][1]} ({best[seeds][0]:.1f} s)")
    for precision in sorted({p for _f, p in options[3]}):
        fused, unfused = med.get((3, candidate_name(True, precision))), med.get((3, candidate_name(False, precision)))
        if fused and unfused:
            print(f"speed-up fused / unfused engine, {3 * nets} nets, {precision}: {unfused / fused:.2f}x")
    print(
        f"wall ratio 3-seed race ({3 * nets} nets) / 1-seed race ({nets} nets), each at its fastest: "
        f"{best[3][0] / best[1][0]:.2f}"
    )
    for seeds in (1, 3):
        spent, choice = probe_cost(data, depths, device, seeds=seeds, precision=args.precision)
        print(
            f"choosing for a {seeds}-seed quick race ({QUICK_RECIPE.steps} steps): {spent:.1f} s, chose "
            f"{candidate_name(choice.fused, choice.precision)} ({choice.how}; {choice.seconds_per_step})"
        )


def choice_rounds(args, data, device: torch.device) -> None:
    """The engine choice of the 400-step quick race, made ``args.choices`` times per seed count from scratch."""
    from resnet_viz.race.autotune import candidate_name

    for seeds in (1, 3):
        for i in range(args.choices):
            spent, choice = probe_cost(data, tuple(args.race_depths), device, seeds=seeds, precision=args.precision)
            measured = ", ".join(
                f"{name} {value * 1000:.0f} ms"
                for name, value in sorted(choice.seconds_per_step.items(), key=lambda kv: kv[1])
            )
            print(
                f"{seeds} seed(s), choice {i + 1}: {candidate_name(choice.fused, choice.precision)} in {spent:.1f} s "
                f"({measured})",
                flush=True,
            )


def race_rounds(args, recipe: Recipe, data, device: torch.device) -> None:
    """The whole quick race (both twins at each depth), engine against hand-written loops, round by round."""
    depths = tuple(args.race_depths)
    fast = resolve_precision(device)
    hand_written_race(replace(recipe, steps=3), data, depths, device, "fp32")  # warm-up
    rows = []
    for i in range(args.rounds):
        fp32 = hand_written_race(recipe, data, depths, device, "fp32")
        same = hand_written_race(recipe, data, depths, device, fast)
        eng = engine_race(recipe, data, depths, device, eval_every=50)
        eng_fp32 = engine_race(recipe, data, depths, device, eval_every=50, precision="fp32")
        fp32_2 = hand_written_race(recipe, data, depths, device, "fp32")  # bracket: load drifts
        ref = (fp32 + fp32_2) / 2
        rows.append((ref, same, eng, eng_fp32))
        print(
            f"round {i + 1}: hand-written float32 {ref:6.0f} img/s, hand-written {fast} {same:6.0f} img/s, "
            f"engine {fast} {eng:6.0f} img/s ({eng / ref:.2f}x float32 loop, {eng / same:.2f}x {fast} loop), "
            f"engine float32 {eng_fp32:6.0f} img/s ({eng_fp32 / ref:.2f}x)",
            flush=True,
        )
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    ratios = [
        statistics.median(r[2] / r[0] for r in rows),
        statistics.median(r[2] / r[1] for r in rows),
        statistics.median(r[3] / r[0] for r in rows),
    ]
    print(
        f"quick race: depths {list(depths)} x both twins, batch {recipe.batch_size}, {args.image_size} px, "
        f"{recipe.steps} steps, {recipe.optimizer}, {describe_device(device)}, median of {args.rounds} rounds; "
        f"engine with test checkpoints every 50 steps and snapshots every 20"
    )
    print(f"hand-written loop: float32 {med[0]:.0f} img/s, {fast} {med[1]:.0f} img/s; engine {med[2]:.0f} img/s")
    print(f"throughput ratio engine ({fast}) / float32 hand-written loop: {ratios[0]:.2f}")
    print(f"throughput ratio engine ({fast}) / equally configured hand-written loop ({fast}): {ratios[1]:.2f}")
    print(f"throughput ratio engine (float32) / float32 hand-written loop: {ratios[2]:.2f}")


def memory_formats(depth: int, recipe: Recipe, data) -> float:
    """Throughput ratio of the hand-written loop on NCHW / on channels_last tensors, one step of each in turn."""
    loops = {fmt: HandLoop(depth, recipe, data, fmt) for fmt in (NCHW, CHANNELS_LAST)}
    seconds = dict.fromkeys(loops, 0.0)
    for step in range(recipe.steps):
        for fmt, loop in loops.items():
            t0 = time.perf_counter()
            loop.step(step)
            seconds[fmt] += time.perf_counter() - t0
    return seconds[CHANNELS_LAST] / seconds[NCHW]


def race_config(depth: int, recipe: Recipe, eval_every: int) -> RaceConfig:
    return RaceConfig(
        depths=(depth,),
        twins=("resnet",),
        recipe=recipe,
        eval_every=eval_every,
        snapshot_every=20,
        precision="auto",
        seeds=1,
    )


def engine(depth: int, recipe: Recipe, data, *, eval_every: int) -> tuple[float, float]:
    """Images per second of the race engine over its training loop: (without, with) its test evaluation."""
    race = Race(race_config(depth, recipe, eval_every), data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    images = recipe.steps * recipe.batch_size
    return images / (race.elapsed_s - race.test_seconds), images / race.elapsed_s


class InterleavedRace(Race):
    """A race that runs one hand-written step before each of its own, in its worker thread, timing both."""

    def __init__(self, hand: HandLoop, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hand, self.hand_seconds, self.hand_steps = hand, 0.0, 0

    def _wait_if_paused(self) -> bool:
        t0 = time.perf_counter()
        self.hand.step(self.hand_steps)
        self.hand_seconds += time.perf_counter() - t0  # the engine's step runs from here until the next call
        self.hand_steps += 1
        return super()._wait_if_paused()


def step_by_step(depth: int, recipe: Recipe, data, hand_precision: str = "auto") -> float:
    """Throughput ratio engine / hand-written, one step of each in turn (test evaluation left out)."""
    hand = HandLoop(depth, recipe, data, precision=hand_precision)
    race = InterleavedRace(hand, race_config(depth, recipe, 0), data=data, scheduler=RaceScheduler(1)).start()
    race.join()
    assert race.status == "finished", race.message
    engine_seconds = race.elapsed_s - race.hand_seconds - race.test_seconds
    return race.hand_seconds / engine_seconds


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
    parser.add_argument("--steps", type=int, default=QUICK_RECIPE.steps)
    parser.add_argument("--batch-size", type=int, default=QUICK_RECIPE.batch_size)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=QUICK_IMAGE_SIZE)
    parser.add_argument("--memory-format-check", action="store_true")
    parser.add_argument("--openmp-check", action="store_true")
    parser.add_argument(
        "--race",
        action="store_true",
        help="time the whole race (both twins per depth) instead of one net's instrumentation",
    )
    parser.add_argument("--race-depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument(
        "--seeds",
        action="store_true",
        help="time the race with 3 seeds per net, fused and unfused, against the 1-seed race",
    )
    parser.add_argument(
        "--choices",
        type=int,
        default=0,
        metavar="N",
        help="only choose the quick race's engine N times for 1 and for 3 seeds, each on a machine "
        "that has not measured before: is the choice stable, and what does it cost?",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="the races' precision for --seeds (auto: bfloat16 where the CPU computes it natively)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    recipe = replace(QUICK_RECIPE, steps=args.steps, batch_size=args.batch_size)
    data = load_race_data(QUICK_DATASET, train_size=4000, test_size=500, image_size=args.image_size)
    if args.choices:
        choice_rounds(args, data, device)
        return
    if args.seeds:
        seed_rounds(args, recipe, data, device)
        return
    if args.race:
        race_rounds(args, recipe, data, device)
        return
    hand_written(args.depth, replace(recipe, steps=5), data)  # warm-up
    stepwise, ratios, ratios_eval, rates, nchw, threads, vs_fp32 = [], [], [], [], [], [], []
    for i in range(args.rounds):
        vs_fp32.append(step_by_step(args.depth, recipe, data, hand_precision="fp32"))
        print(
            f"round {i + 1}: engine ({resolve_precision('cpu')}) / float32 hand-written loop, step by step: "
            f"{vs_fp32[-1]:.3f}",
            flush=True,
        )
        stepwise.append(step_by_step(args.depth, recipe, data))
        base = hand_written(args.depth, recipe, data)
        inst, _ = engine(args.depth, recipe, data, eval_every=0)
        _, full = engine(args.depth, recipe, data, eval_every=50)
        base2 = hand_written(args.depth, recipe, data)  # bracket the engine runs: load drifts on a shared machine
        ref = (base + base2) / 2
        ratios.append(inst / ref)
        ratios_eval.append(full / ref)
        rates.append((ref, inst, full))
        print(
            f"round {i + 1}: step by step {stepwise[-1]:.3f}; whole loops: hand-written {ref:6.1f} img/s, "
            f"engine {inst:6.1f} img/s ({inst / ref:.3f}), with test checkpoints {full:6.1f} img/s "
            f"({full / ref:.3f})",
            flush=True,
        )
        if args.memory_format_check:
            nchw.append(memory_formats(args.depth, recipe, data))
            print(f"         hand-written on NCHW tensors: {nchw[-1]:.3f} of the channels_last loop", flush=True)
        if args.openmp_check:
            run = functools.partial(hand_written, args.depth, recipe, data)
            kept, released = in_worker_thread(run, release=False), in_worker_thread(run, release=True)
            threads.append((kept / ref, released / ref))
            print(
                f"         hand-written in a worker thread: {kept / ref:.3f} with the main thread's OpenMP pool "
                f"kept, {released / ref:.3f} with it released",
                flush=True,
            )
    print(
        f"ResNet-{args.depth}, batch {args.batch_size}, {args.image_size} px, {args.steps} steps, {recipe.optimizer}, "
        f"channels_last, {torch.get_num_threads()} threads, median of {args.rounds} rounds; engine and hand-written "
        f"loop in {resolve_precision('cpu')} unless noted"
    )
    print(
        f"throughput ratio engine ({resolve_precision('cpu')}) / float32 hand-written loop, step by step: "
        f"{statistics.median(vs_fp32):.3f}"
    )
    print(f"hand-written loop: {statistics.median(r[0] for r in rates):.1f} img/s")
    print(f"throughput ratio engine / hand-written, step by step (instrumentation): {statistics.median(stepwise):.3f}")
    print(f"throughput ratio engine / hand-written, whole loops (instrumentation): {statistics.median(ratios):.3f}")
    print(
        f"throughput ratio engine / hand-written, whole loops (with test checkpoints): "
        f"{statistics.median(ratios_eval):.3f}"
    )
    if nchw:
        print(f"hand-written loop on NCHW tensors / channels_last: {statistics.median(nchw):.3f}")
    if threads:
        print(
            f"hand-written loop in a worker thread / in the main thread: "
            f"{statistics.median(t[0] for t in threads):.3f} with the main pool kept, "
            f"{statistics.median(t[1] for t in threads):.3f} released"
        )


if __name__ == "__main__":
    main()
