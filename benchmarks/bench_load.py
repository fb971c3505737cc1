"""Load check: several browser sessions upload different photos to Explain at once.

Starts ``streamlit run app.py`` on a local port, then measures, in headless
Chromium (Debian's, at /usr/bin/chromium), the time from an upload to both
heatmaps on screen: first for one user alone, then for N users at once.
Usage: ``python benchmarks/bench_load.py [--users 4]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import CHROMIUM_ARGS as ARGS  # noqa: E402  (the browser tests' server and browser)
from conftest import running_app


def _photos(n: int, folder: str) -> list[str]:
    """Different photos per user: the samples, shifted and recoloured."""
    sources = [
        Image.open(os.path.join(ROOT, "resnet_viz", "assets", "samples", f)).convert("RGB")
        for f in sorted(os.listdir(os.path.join(ROOT, "resnet_viz", "assets", "samples")))
    ]
    paths = []
    for i in range(n):
        arr = np.roll(np.asarray(sources[i % len(sources)]), 17 * i, axis=1)[..., [(i + c) % 3 for c in range(3)]]
        path = os.path.join(folder, f"user{i}.jpg")
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def _one_user(browser, url: str, photo: str, results: list, start: threading.Barrier | None) -> None:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(url + "/explain")
    page.locator("[data-testid=stMain]").get_by_text("Upload", exact=True).click()
    page.locator("[data-testid=stMain] input[type=file]").wait_for(state="attached")
    if start:
        start.wait()
    t0 = time.perf_counter()
    page.locator("[data-testid=stMain] input[type=file]").set_input_files(photo)
    page.wait_for_function("document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img').length >= 2")
    results.append(time.perf_counter() - t0)
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=4)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with running_app() as url:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            photos = _photos(args.users + 1, tmp)
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            warm: list[float] = []
            _one_user(browser, url, photos[-1], warm, None)  # loads models and caches
            alone: list[float] = []
            _one_user(browser, url, photos[0], alone, None)
            browser.close()
            # Each simultaneous user drives its own browser from its own thread (Playwright's sync API).
            together: list[float] = []
            start = threading.Barrier(args.users)

            def user(i: int) -> None:
                with sync_playwright() as p:
                    b = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
                    _one_user(b, url, photos[i], together, start)
                    b.close()

            threads = [threading.Thread(target=user, args=(i,)) for i in range(args.users)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    print(f"first upload (cold caches): {warm[0]:.2f} s")
    print(f"one user alone: upload -> both heatmaps in {alone[0]:.2f} s")
    print(
        f"{args.users} users at once: all {len(together)} got results; median {statistics.median(together):.2f} s, "
        f"slowest {max(together):.2f} s ({max(together) / alone[0]:.1f}x alone)"
    )


if __name__ == "__main__":
    main()
