"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_interleaved(
    cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 2, device: torch.device = torch.device("cpu")
) -> dict[str, float]:
    """Median seconds per call of each case, run round-robin so drift hits all alike."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def print_table(title: str, medians: dict[str, float], baseline: str) -> None:
    base = medians[baseline]
    print(f"\n{title}")
    print(f"| case | median ms | x {baseline} |")
    print("|---|---:|---:|")
    for name, t in medians.items():
        print(f"| {name} | {t * 1e3:.1f} | {t / base:.2f} |")
