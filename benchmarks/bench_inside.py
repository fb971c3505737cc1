"""Inside a block: the cost of the page's computations, each against a baseline measured in the same run.

Usage: ``python benchmarks/bench_inside.py [--repeats N] [--shares-only]``. Prints, first, the identity share of
the class evidence per block for the bundled ResNet-20 and ResNet-56 (64 shapes test images, predicted class: the
numbers docs/inside.md quotes), then medians over interleaved repeats:

* a block's maps for both twins (one image, and a batch of 64) against one no-grad forward pass of both twins on the
  same input (goal: at most 1.2x);
* the evidence split of a batch of 64 against one forward and backward pass (the summed predicted-class logits,
  differentiated with respect to the input) (goal: at most 1.3x);
* dataset examples for every channel of a block over the 500 shapes test images, against one no-grad forward pass
  of the 500 images (goal: at most 2 s on 2 cores; cached afterwards);
* the page's first view with every cache cleared (AppTest), against the Residual vs identity page's first view
  measured the same way (goal: at most 3 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, time_interleaved  # noqa: E402

import resnet_viz as rv  # noqa: E402
from resnet_viz.data import TEST_SEED  # noqa: E402

warnings.filterwarnings("ignore")
MODELS = ("shapes-20", "shapes-56")


def print_shares(images: torch.Tensor) -> None:
    print(f"\nIdentity share of the class evidence, median over {len(images)} shapes test images (predicted class)")
    for name in MODELS:
        resnet, plain, _info = rv.load_bundled(name)
        split = rv.evidence_split(resnet, images)
        shares = split.median_identity_share()
        plain_shares = rv.evidence_split(plain, images).median_identity_share()
        print(
            f"{name}: ResNet median over blocks {split.overall_median_share():.3f}; plain twin "
            f"{max(plain_shares.values()):.3f} at most; branch-dominated blocks (< 0.5): "
            f"{[b for b, v in shares.items() if v < 0.5]}"
        )
        print("  " + " ".join(f"{b}={v:.2f}" for b, v in shares.items()))


def forward_backward(net, x):
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = net(x)
        score = logits.gather(1, logits.detach().argmax(1, keepdim=True)).sum()
        return torch.autograd.grad(score, x)


def page_first_view(page: str) -> float:
    """Seconds of one AppTest run of ``page`` with every Streamlit cache cleared (the app's imports are warm)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=600)
    at.run()
    at.switch_page(page)
    st.cache_data.clear()
    st.cache_resource.clear()
    start = time.perf_counter()
    at.run()
    took = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(at.exception)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--page-repeats", type=int, default=3)
    parser.add_argument("--shares-only", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    images500 = rv.make_shapes(500, seed=TEST_SEED)[0]
    images64 = rv.make_shapes(64, seed=TEST_SEED)[0]
    print_shares(images64)
    if args.shares_only:
        return

    for name in MODELS:
        resnet, plain, _info = rv.load_bundled(name)
        last = [b for b, _m in resnet.blocks()][-1]
        for n in (1, 64):
            x = images64[:n]

            def forward_both(x=x):
                with torch.no_grad():
                    return resnet(x), plain(x)

            medians = time_interleaved(
                {
                    "forward of both twins": forward_both,
                    f"maps of {last}, both twins": lambda x=x: (
                        rv.block_maps(resnet, x, last),
                        rv.block_maps(plain, x, last),
                    ),
                    "maps of layer1.0, both twins": lambda x=x: (
                        rv.block_maps(resnet, x, "layer1.0"),
                        rv.block_maps(plain, x, "layer1.0"),
                    ),
                },
                repeats=args.repeats,
            )
            print_table(f"{name}, {n} image(s): block maps (goal <= 1.2x)", medians, "forward of both twins")
        medians = time_interleaved(
            {
                "forward + backward": lambda: forward_backward(resnet, images64),
                "evidence split, every block": lambda: rv.evidence_split(resnet, images64),
            },
            repeats=args.repeats,
        )
        print_table(f"{name} ResNet, 64 images: evidence split (goal <= 1.3x)", medians, "forward + backward")

        def forward500():
            with torch.no_grad():
                for s in range(0, 500, 250):
                    resnet(images500[s : s + 250])

        medians = time_interleaved(
            {
                "forward of 500 images": forward500,
                f"dataset examples of {last}": lambda: rv.dataset_examples(resnet, images500, [last]),
                "dataset examples of layer1.0": lambda: rv.dataset_examples(resnet, images500, ["layer1.0"]),
            },
            repeats=max(3, args.repeats // 2),
            warmup=1,
        )
        print_table(f"{name} ResNet, 500 test images: dataset examples (goal <= 2 s)", medians, "forward of 500 images")

    pages = {"Residual vs identity": "pages/residual_vs_identity.py", "Inside a block": "pages/inside_a_block.py"}
    page_first_view(pages["Inside a block"])  # imports, fonts, plotly: not what a cold cache costs
    samples: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(args.page_repeats):
        for name, page in pages.items():
            samples[name].append(page_first_view(page))
    print_table(
        "First view of the page, every cache cleared (goal <= 3 s)",
        {name: float(np.median(s)) for name, s in samples.items()},
        "Residual vs identity",
    )


if __name__ == "__main__":
    main()
