"""The training race in the app, watched live in a browser, against the same race with nobody watching.

Starts ``streamlit run app.py``, opens the Training race page in headless
Chromium (Debian's, at /usr/bin/chromium), presses Start and reads the progress
bar until the race has gone from step 5 to step ``--steps - 5``. The baseline is
the same race (the quick race's networks and recipe, ``--steps`` steps) run by
the library in a separate process with nothing polling it, timed over the same
steps, before and after the app run. Both share the machine's 2 cores with
whatever else runs; in the app, the browser that draws the curves twice a
second is on the same machine, as on a teacher's laptop.

Prints images per second and the ratio app / library.
Usage: ``python benchmarks/bench_race_app.py [--steps 40]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
from conftest import CHROMIUM_ARGS as ARGS  # noqa: E402  (the browser tests' server and browser)
from conftest import running_app

from resnet_viz.race import RaceConfig  # noqa: E402

FIRST = 5  # steps left out at the start: data loading and the first, slower steps
QUICK = RaceConfig()  # the page's default race on the CPU: its networks and recipe
IMAGES_PER_STEP = QUICK.recipe.batch_size * len(QUICK.depths) * len(QUICK.twins)

LIBRARY_RUN = """
import json, sys, time
from dataclasses import replace
from resnet_viz import race as rr
steps, first = int(sys.argv[1]), int(sys.argv[2])
config = rr.RaceConfig(recipe=replace(rr.quick_recipe(), steps=steps))
race = rr.Race(config).start()
marks = {}
while not race.join(0.02):
    for mark in (first, steps - first):
        if race.step >= mark and mark not in marks:
            marks[mark] = time.perf_counter()
print(json.dumps({"seconds": marks[steps - first] - marks[first]}))
"""


def library_rate(steps: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY_RUN, str(steps), str(FIRST)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    seconds = json.loads(out.strip().splitlines()[-1])["seconds"]
    return (steps - 2 * FIRST) * IMAGES_PER_STEP / seconds


def app_rate(steps: int) -> float:
    from playwright.sync_api import sync_playwright

    with running_app() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{url}/training_race?steps={steps}")
        page.get_by_role("button", name="Start").click()
        marks: dict[int, float] = {}
        deadline = time.monotonic() + 600
        while len(marks) < 2 and time.monotonic() < deadline:
            text = page.locator("[data-testid=stMain]").inner_text()
            found = re.search(r"Step (\d+) of \d+", text)
            step = int(found.group(1)) if found else 0
            for mark in (FIRST, steps - FIRST):
                if step >= mark and mark not in marks:
                    marks[mark] = time.perf_counter()
            time.sleep(0.05)
        browser.close()
    if len(marks) < 2:
        raise RuntimeError("the race in the app did not reach its last timed step within 10 minutes")
    return (steps - 2 * FIRST) * IMAGES_PER_STEP / (marks[steps - FIRST] - marks[FIRST])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    before = library_rate(args.steps)
    app = app_rate(args.steps)
    after = library_rate(args.steps)
    base = (before + after) / 2
    print(
        f"quick race (ResNet and plain, depths {QUICK.depths}, batch {QUICK.recipe.batch_size}, CPU), "
        f"steps {FIRST}-{args.steps - FIRST}"
    )
    print(f"library, nobody watching: {before:.1f} and {after:.1f} img/s")
    print(f"app, watched in a browser: {app:.1f} img/s")
    print(f"throughput ratio app / library: {app / base:.3f}")


if __name__ == "__main__":
    main()
