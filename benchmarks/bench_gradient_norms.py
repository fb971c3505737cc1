"""Cost of gradient_norms against a bare forward+backward of the same model and batch.

    python benchmarks/bench_gradient_norms.py [--repeats 11] [--threads 1] [--device cuda] [--quick] [--wall]
                                              [--batch 64]

Both are timed in the same run, interleaved; the ratio is the median over
back-to-back pairs (the ratio of the fastest runs is printed too). On the CPU
the clock is the process's CPU time with one thread, which other programs on a
shared machine disturb far less than wall time; on CUDA it is wall time after
a synchronise. The bare pass is ``cross_entropy(model(x), y).backward()`` with
the model in training mode (batch statistics, as gradient_norms uses); its
``.grad`` is cleared outside the timed region.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from resnet_viz import build_twins  # noqa: E402
from resnet_viz.gradients import NUM_CLASSES, example_batch, gradient_norms  # noqa: E402

CASES = [  # (label, arch, depth, batch size)
    ("CIFAR ResNet-20", "cifar", 20, 16),
    ("CIFAR ResNet-56", "cifar", 56, 16),
    ("CIFAR ResNet-56", "cifar", 56, 64),
    ("CIFAR ResNet-110", "cifar", 110, 8),
    ("ResNet-18 (224 px)", "resnet18", None, 2),
    ("ResNet-50 (224 px)", "resnet50", None, 2),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_forward_backward(model, x, y) -> None:
    model.train()
    loss = F.cross_entropy(model(x), y)
    loss.backward()


def bench(
    arch: str, depth: int | None, batch_size: int, repeats: int, device: torch.device, wall: bool = False
) -> tuple[list[float], list[float]]:
    resnet, _ = build_twins(arch, depth=depth or 20, num_classes=NUM_CLASSES)
    model = resnet.to(device)
    x, y = example_batch("noise", arch=arch, batch_size=batch_size)
    x, y = x.to(device), y.to(device)
    running = {k: v.clone() for k, v in model.state_dict().items()}  # bare passes update BN statistics

    clock = time.process_time if device.type == "cpu" and not wall else time.perf_counter

    def time_one(fn) -> float:
        model.zero_grad(set_to_none=True)
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        return clock() - start

    for _ in range(2):  # warm-up
        time_one(lambda: bare_forward_backward(model, x, y))
        time_one(lambda: gradient_norms(model, x, y))
    bare, probe = [], []
    for i in range(repeats):
        # Alternate which goes first so drifts in machine load hit both equally.
        order = [("bare", bare), ("probe", probe)] if i % 2 == 0 else [("probe", probe), ("bare", bare)]
        for kind, times in order:
            if kind == "bare":
                times.append(time_one(lambda: bare_forward_backward(model, x, y)))
            else:
                times.append(time_one(lambda: gradient_norms(model, x, y)))
    model.load_state_dict(running)
    return bare, probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads; 1 gives stable CPU times on a shared machine"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="CIFAR cases only")
    parser.add_argument("--wall", action="store_true", help="wall-clock time on the CPU too (with --threads 2)")
    parser.add_argument("--batch", type=int, help="only the cases with this batch size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = "process CPU time" if device.type == "cpu" and not args.wall else "wall time"
    print(f"device={device} threads={torch.get_num_threads()} repeats={args.repeats} (median of {clock})")
    print("| model | batch | bare fwd+bwd (ms) | gradient_norms (ms) | ratio (median of pairs) | ratio of minima |")
    print("|---|---|---|---|---|---|")
    for label, arch, depth, batch_size in CASES:
        if (args.quick and arch != "cifar") or (args.batch and batch_size != args.batch):
            continue
        bare, probe = bench(arch, depth, batch_size, args.repeats, device, wall=args.wall)
        # Each pair ran back to back, so its ratio cancels slow drifts in machine load.
        pair_ratio = statistics.median(p / b for p, b in zip(probe, bare))
        print(
            f"| {label} | {batch_size} | {statistics.median(bare) * 1e3:.1f} | {statistics.median(probe) * 1e3:.1f} "
            f"| {pair_ratio:.2f}x | {min(probe) / min(bare):.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
