"""Would ``torch.compile`` make the training race faster? Its compile time against the steps it saves.

For each net of the quick race (ResNet and plain twin at each depth), in float32 on one CPU thread (the race trains
one net per core), measures the eager training step, the compiled one, and the time the first compiled step takes
with an empty compile cache and with a warm one (Inductor keeps compiled graphs on disk between processes).
Each measurement runs in its own process, and the cache lives in a temporary folder, so the machine's own cache
is neither used nor changed. Prints, for a race of ``--steps`` steps, how much compiling would save or cost.

    python benchmarks/bench_compile.py                 # depths 20 and 56, 400 steps
    python benchmarks/bench_compile.py --depths 20 --timed 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(depth: int, twin: str, batch: int, image_size: int, timed: int) -> dict:
    """One process's numbers: eager and compiled seconds per step, and the first compiled step's seconds."""
    import torch
    import torch.nn.functional as F

    from resnet_viz.models import build_twins

    torch.set_num_threads(1)
    resnet, plain = build_twins("cifar", depth=depth, seed=0)
    model = (resnet if twin == "resnet" else plain).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, image_size, image_size, generator=gen).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=gen)

    def step(net) -> None:
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def per_step(net) -> float:
        times = []
        for _ in range(timed):
            t0 = time.perf_counter()
            step(net)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    step(model)  # oneDNN builds its kernels on the first step
    eager = per_step(model)
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    step(compiled)
    first = time.perf_counter() - t0
    step(compiled)
    return {"eager": eager, "compiled": per_step(compiled), "first": first}


def in_process(args: list[str], cache: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, __file__, "--one", *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400, help="the race's steps, for the verdict")
    parser.add_argument("--timed", type=int, default=20, help="steps timed per measurement")
    parser.add_argument("--one", nargs=2, metavar=("DEPTH", "TWIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.batch_size, args.image_size, args.timed)))
        return
    import torch

    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, float32, 1 thread per net, batch {args.batch_size}, "
        f"{args.image_size} px"
    )
    saved_warm = saved_cold = 0.0
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        for depth in args.depths:
            for twin in ("resnet", "plain"):
                shape = [
                    str(depth),
                    twin,
                    "--batch-size",
                    str(args.batch_size),
                    "--image-size",
                    str(args.image_size),
                    "--timed",
                    str(args.timed),
                ]
                cold = in_process(shape, cache)
                warm = in_process(shape, cache)
                eager = statistics.median([cold["eager"], warm["eager"]])
                compiled = statistics.median([cold["compiled"], warm["compiled"]])
                gain = (eager - compiled) * args.steps
                saved_cold += gain - cold["first"]
                saved_warm += gain - warm["first"]
                print(
                    f"{twin}-{depth}: eager {eager * 1000:.1f} ms/step, compiled {compiled * 1000:.1f} ms/step "
                    f"({eager / compiled:.2f}x); first compiled step {cold['first']:.1f} s with an empty cache, "
                    f"{warm['first']:.1f} s with a warm one"
                )
    print(
        f"over a {args.steps}-step race of these nets (run one after another, as one core would): compiling "
        f"{'saves' if saved_cold > 0 else 'costs'} {abs(saved_cold):.0f} s with an empty cache and "
        f"{'saves' if saved_warm > 0 else 'costs'} {abs(saved_warm):.0f} s with a warm one"
    )


if __name__ == "__main__":
    main()
