"""Attribution speed: rv.attribute against captum called directly, and method switches in the app.

Usage:
  python benchmarks/bench_attribution.py [--models shapes-20 resnet18] [--repeats N] [--device cpu|cuda]
  python benchmarks/bench_attribution.py --app      # headless Chromium: time from choosing a method to its maps

Library: for each method, ``rv.attribute(model, x, method=..., target=...)`` and captum's own
call with the same options on the same model and input, interleaved in one run; medians and
their ratio. ``rv.attribute`` includes everything it does (input checks, locks or the private
copy of hooked methods, the display map); captum's call is the attribution alone.

App: the bundled shapes-20 twins and a 224 x 224 photo (the sample cat, cropped), the Explain
page in headless Chromium; for each method, the time from choosing it to both new maps on screen.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import time_interleaved  # noqa: E402

import resnet_viz as rv  # noqa: E402
from resnet_viz import attribution as A  # noqa: E402

warnings.filterwarnings("ignore")


def captum_call(model, x, method: str, target: int, used: dict):
    """captum's own call with the options rv.attribute used (``used`` = Attribution.options)."""
    from captum import attr as ca

    zeros = torch.zeros_like(x)
    if method == "Grad-CAM":
        layer = getattr(model, used["layer"])
        return lambda: ca.LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    if method == "Saliency":
        return lambda: ca.Saliency(model).attribute(x, target=target, abs=True)
    if method == "Integrated Gradients":
        return lambda: ca.IntegratedGradients(model).attribute(
            x, baselines=zeros, target=target, n_steps=used["n_steps"], internal_batch_size=used["internal_batch_size"]
        )
    if method == "Gradient SHAP":
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(x)
        base = torch.cat([zeros, noise])
        return lambda: ca.GradientShap(model).attribute(
            x, baselines=base, n_samples=used["n_samples"], stdevs=used["stdevs"], target=target
        )
    if method == "DeepLift":
        return lambda: ca.DeepLift(model).attribute(x, baselines=zeros, target=target)
    if method == "Guided Backprop":
        return lambda: ca.GuidedBackprop(model).attribute(x, target=target)
    if method == "Guided Grad-CAM":
        layer = getattr(model, used["layer"])
        return lambda: ca.GuidedGradCam(model, layer).attribute(x, target=target)
    if method == "Occlusion":
        c, w, s = x.shape[1], used["window"], used["stride"]
        return lambda: ca.Occlusion(model).attribute(
            x,
            sliding_window_shapes=(c, w, w),
            strides=(c, s, s),
            baselines=0,
            target=target,
            perturbations_per_eval=used["perturbations_per_eval"],
        )
    raise ValueError(method)


def bench_library(names, repeats: int, device: torch.device, methods) -> None:
    for name in names:
        if name.startswith("shapes"):
            model = rv.load_bundled(name, device=device)[0]
            x = rv.make_shapes(1, seed=2)[0].to(device)
        else:
            model = rv.build_twins(name, seed=0)[0].to(device).eval()
            x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
        model.requires_grad_(False)  # as the app's shared models
        print(f"\n{name} at {x.shape[-1]}x{x.shape[-2]} on {device}, {torch.get_num_threads()} threads")
        print("| method | captum ms | rv.attribute ms | ratio |")
        print("|---|---:|---:|---:|")
        for method in methods:
            used = rv.attribute(model, x, method=method, target=1).options
            ours = lambda m=method: rv.attribute(model, x, method=m, target=1)  # noqa: E731
            theirs = captum_call(model, x, method, 1, used)
            start = time.perf_counter()
            theirs()
            once = time.perf_counter() - start
            # fast calls get more repeats (about 3 s of each), slow ones at least 3
            n = int(min(300, max(3, repeats if once > 0.2 else 3.0 / max(once, 1e-4))))
            medians = time_interleaved(
                {"captum": theirs, "ours": ours}, repeats=n, warmup=1 if once > 1 else 3, device=device
            )
            print(
                f"| {method} | {medians['captum'] * 1e3:.1f} | {medians['ours'] * 1e3:.1f} | "
                f"{medians['ours'] / medians['captum']:.3f} |",
                flush=True,
            )


def bench_app(methods, rounds: int) -> None:
    """Time, in headless Chromium, from choosing a method to both of its maps on the page."""

    from PIL import Image
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from conftest import CHROMIUM_ARGS, running_app

    cat = Image.open(rv.sample_images()["chelsea"]).convert("RGB")
    left = (cat.width - cat.height) // 2
    photo = os.path.join("/tmp", "bench-attribution-224.png")
    cat.crop((left, 0, left + cat.height, cat.height)).resize((224, 224)).save(photo)
    times = {m: [] for m in methods}
    with running_app() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url + "/explain")
        main = page.locator("[data-testid=stMain]")
        main.get_by_text("Upload", exact=True).click()
        main.locator("input[type=file]").set_input_files(photo)
        main.get_by_text("Grad-CAM for", exact=False).first.wait_for()
        select = main.locator("[data-testid=stMultiSelect]").first
        for _ in range(rounds):
            for method in methods:
                select.get_by_role("button", name="Clear all").click()  # back to the default, Grad-CAM alone
                main.locator("[data-testid=stImageCaption]").filter(has_text="Grad-CAM for").nth(1).wait_for()
                page.wait_for_timeout(500)
                select.locator("input").first.click()
                page.keyboard.type(method)
                start = time.perf_counter()
                page.keyboard.press("Enter")
                main.locator("[data-testid=stImageCaption]").filter(has_text=f"{method} for").nth(1).wait_for()
                times[method].append(time.perf_counter() - start)
                page.keyboard.press("Escape")
        browser.close()
    print("\nApp: bundled shapes-20 twins, 224x224 photo, headless Chromium on this machine")
    print("| method | s to both maps, first time | again (cached) |")
    print("|---|---:|---:|")
    for method, ts in times.items():
        again = ", ".join(f"{t:.2f}" for t in ts[1:]) or "-"
        print(f"| {method} | {ts[0]:.2f} | {again} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["shapes-20", "resnet18"])
    parser.add_argument("--methods", nargs="+", default=list(rv.ATTRIBUTION_METHODS))
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--app", action="store_true", help="time method switches in the app instead")
    parser.add_argument(
        "--rounds", type=int, default=2, help="app: rounds (the first computes, later ones hit the cache)"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}")
    if args.app:
        bench_app([m for m in args.methods if m != A.DEFAULT_METHOD], args.rounds)
    else:
        bench_library(args.models, args.repeats, torch.device(args.device), args.methods)


if __name__ == "__main__":
    main()
