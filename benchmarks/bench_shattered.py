"""The Shattered gradients page's default view: how long it computes, against a bare forward+backward.

    python benchmarks/bench_shattered.py [--repeats 3] [--threads 2] [--device cuda]

Times, interleaved in one run (median wall seconds and median process CPU seconds), the two parts of the
page's default view: the paper's three nets (Fig. 1, BatchNorm) with the depth sweep of the paper's nets (cold:
the sweep reuses the figure's three nets), and both CIFAR twins at depth 56 along a 64-point image line; then
their total against the page's goal of 2 s. On the CPU it then times the whole page as a visitor meets it: one
cold script run through Streamlit's AppTest (figures and text included). Baselines measured in the same run: a
bare forward+backward of ResNet-56 on the 64 line images (what one twin's line costs at least), and the 24-layer
paper net's 256 gradients one point at a time against the batched line (one backward pass). On a shared machine
wall time measures the other jobs too; the process's CPU time (all its threads together) is an upper bound of
the wall time on otherwise idle cores.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import statistics  # noqa: E402
import time  # noqa: E402

from common import print_table, sync  # noqa: E402

from resnet_viz import build_twins  # noqa: E402
from resnet_viz import shattered as sh  # noqa: E402


def time_both(cases: dict, *, repeats: int, device: torch.device) -> tuple[dict, dict]:
    """Median wall and process-CPU seconds per call of each case, round-robin after one warm-up call each."""
    for fn in cases.values():
        fn()
    wall = {name: [] for name in cases}
    cpu = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            sync(device)
            w, c = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    return ({n: statistics.median(v) for n, v in wall.items()}, {n: statistics.median(v) for n, v in cpu.items()})


def page_run(repeats: int, bare) -> None:
    """The whole page as a visitor meets it on a fresh server: one script run through Streamlit's AppTest, its
    caches cleared first (the computations, the figures, the text alternatives)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    at = AppTest.from_file(os.path.join(root, "app.py"), default_timeout=300)
    at.run()

    def cold_page() -> None:
        st.cache_data.clear()
        sh._fc_line_gradients.cache_clear()
        at.switch_page("pages/home.py")
        at.run()  # leave the page, so the next switch runs it from the top
        start = time.perf_counter()
        at.switch_page("pages/shattered_gradients.py")
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(at.exception[0].value)

    times: list[float] = []
    bare_times = []
    for _ in range(repeats):
        cold_page()
        start = time.perf_counter()
        bare()
        bare_times.append(time.perf_counter() - start)
    page, base = statistics.median(times), statistics.median(bare_times)
    print(
        f"\nthe whole page, cold (AppTest script run, caches cleared), wall: {page:.2f} s (goal: under 2 s); "
        f"{page / base:.1f} x the bare pass ({base * 1e3:.0f} ms) in the same run"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    resnet, _plain = build_twins("cifar", depth=56, num_classes=8)
    resnet = resnet.to(device).train()
    x = torch.randn(sh.CIFAR_POINTS, 3, 32, 32, device=device)
    y = torch.zeros(sh.CIFAR_POINTS, dtype=torch.long, device=device)

    def bare() -> None:
        F.cross_entropy(resnet(x), y).backward()
        resnet.zero_grad(set_to_none=True)

    def conv_twins() -> None:
        for twin in ("resnet", "plain"):
            sh.cifar_twin_line_gradients(56, twin, device=device)

    def paper_nets_and_sweep() -> None:
        sh._fc_line_gradients.cache_clear()  # cold, as on a fresh server; the sweep reuses the figure's nets
        sh.paper_figure_nets()
        sh.fc_sweep()

    cases = {
        "bare fwd+bwd ResNet-56, 64 images": bare,
        "paper's three nets (Fig. 1) and their depth sweep": paper_nets_and_sweep,
        "conv twins, depth 56, 64 points": conv_twins,
    }
    base = "bare fwd+bwd ResNet-56, 64 images"
    wall, cpu = time_both(cases, repeats=args.repeats, device=device)
    print_table(f"Shattered gradients page, default view, wall ({args.device}, {args.threads} threads)", wall, base)
    print_table("The same, process CPU time (all threads)", cpu, base)
    for what, medians in (("wall", wall), ("CPU", cpu)):
        total = sum(t for name, t in medians.items() if name != base)
        print(
            f"default view total, {what}: {total:.2f} s (goal: under 2 s wall); {total / medians[base]:.1f} x "
            f"the bare pass"
        )

    if args.device == "cpu":
        page_run(args.repeats, bare)

    net = sh.FullyConnectedNet(24, residual=False)
    x0, v, t = sh.paper_line()
    frozen = sh._freeze_batch_statistics(net, x0 + t[:, None] * v)

    def one_at_a_time() -> None:
        for ti in t:
            sh.line_gradients(frozen, x0, v, torch.stack([ti - 1e-3, ti, ti + 1e-3]))

    lines, lines_cpu = time_both(
        {
            "batched line (one backward)": lambda: sh.line_gradients(frozen, x0, v, t),
            "one point at a time": one_at_a_time,
        },
        repeats=args.repeats,
        device=device,
    )
    print_table("256 gradients of the 24-layer paper net, wall", lines, "batched line (one backward)")
    print_table("The same, process CPU time", lines_cpu, "batched line (one backward)")


if __name__ == "__main__":
    main()
