"""A class at once: N browser sessions open the lesson and reveal the same step together.

Starts ``streamlit run app.py`` on a local port and drives headless Chromium (Debian's, at /usr/bin/chromium):
one browser, one context (its own cookie jar, so its own Streamlit session) per student, all in one asyncio loop.

Each student first reveals the step before the measured one (untimed: it loads the browser's charting code),
then clicks Next.
1. Baseline: one student alone on a fresh server clicks Reveal on the step (cold server caches).
2. A class: on another fresh server, N students open the same step, wait until all are ready, and click Reveal
   at the same moment (cold caches: the class shares one computation).
3. The same class clicks Next and Reveal again (the next step, cold as well).

Prints the time from click to the revealed figure on screen (median and slowest, and slowest / alone), that no
session showed an error or an exception, and the server's resident memory (idle, peak, after), sampled every
0.2 s from /proc. Usage: ``python benchmarks/bench_lesson_class.py [--users 30] [--step exploding]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
from conftest import CHROMIUM_ARGS as ARGS  # noqa: E402  (the browser tests' server and browser)
from conftest import running_app
from serverstats import MemoryWatch, rss_mb, server_pid  # noqa: E402

from resnet_viz.teaching import lesson_steps  # noqa: E402
from ui.routing import app_has_page  # noqa: E402

FIGURE = "[data-testid=stMain] .js-plotly-plot"
ERRORS = "[data-testid=stException], [data-testid=stAlertContentError]"


async def _student(browser, url: str, ready: asyncio.Barrier, go: asyncio.Event, rounds: int) -> dict:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(300_000)
    await page.goto(url)
    # Warm-up, untimed and unsynchronised: reveal the step before (a chart), so the browser has loaded its charting
    # code, then go to the measured step. Otherwise 30 browsers parsing plotly.js at once on the server's own 2
    # cores would dominate the timing, a cost that in class falls on 30 separate student machines.
    await page.get_by_role("button", name="Reveal the answer").click()
    await page.locator(FIGURE).first.wait_for(state="visible")
    await page.get_by_role("button", name="Next").click()
    await page.wait_for_function(f"!document.querySelector('{FIGURE}')")
    await page.get_by_role("button", name="Reveal the answer").wait_for()
    times = []
    for i in range(rounds):
        if i:
            await page.get_by_role("button", name="Next").click()
            await page.wait_for_function(f"!document.querySelector('{FIGURE}')")
            await page.get_by_role("button", name="Reveal the answer").wait_for()
        await ready.wait()
        await go.wait()
        t0 = time.perf_counter()
        await page.get_by_role("button", name="Reveal the answer").click()
        await page.locator(FIGURE).first.wait_for(state="visible")
        times.append(time.perf_counter() - t0)
    errors = await page.locator(ERRORS).count()
    await context.close()
    return {"times": times, "errors": errors}


async def _class(url: str, users: int, rounds: int) -> list[dict]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
        ready = asyncio.Barrier(users + 1)
        gos = [asyncio.Event() for _ in range(rounds)]
        students = [asyncio.create_task(_student_rounds(browser, url, ready, gos, rounds)) for _ in range(users)]
        for go in gos:
            await ready.wait()  # everybody sees the question
            go.set()
        results = await asyncio.gather(*students)
        await browser.close()
    return results


async def _student_rounds(browser, url, ready, gos, rounds):
    # One shared Event per round: a student waits for round i's signal after reaching the barrier.
    class RoundEvents:
        def __init__(self):
            self.i = 0

    state = RoundEvents()

    class Go:
        async def wait(self):
            await gos[state.i].wait()
            state.i += 1

    return await _student(browser, url, ready, Go(), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument(
        "--step",
        default="exploding",
        help="the key of the step to reveal (then the next one); the step before it must draw a chart",
    )
    args = parser.parse_args()
    keys = [s.key for s in lesson_steps(app_has_page)]
    number = keys.index(args.step) + 1
    path = f"/lesson?step={number - 1}&lang=en"  # the warm-up step, then Next

    with running_app() as url:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        with MemoryWatch(pid) as mem:
            alone = asyncio.run(_class(url + path, 1, 1))[0]
        alone_peak = mem.peak
    with running_app() as url:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        idle = rss_mb(pid)
        started = time.perf_counter()
        with MemoryWatch(pid) as mem:
            results = asyncio.run(_class(url + path, args.users, 2))
        wall = time.perf_counter() - started
        after = rss_mb(pid)
    base = alone["times"][0]
    print(
        f"one student alone: Reveal -> figure in {base:.2f} s (step {number}, '{args.step}', cold caches); "
        f"server peak {alone_peak:.0f} MB"
    )
    for r, name in enumerate((args.step, keys[number] if number < len(keys) else "?")):
        times = [res["times"][r] for res in results]
        print(
            f"{args.users} students at once, step '{name}': all {len(times)} got the figure; median "
            f"{statistics.median(times):.2f} s, slowest {max(times):.2f} s ({max(times) / base:.1f}x alone)"
        )
    errors = sum(res["errors"] for res in results)
    print(f"sessions showing an error or exception: {errors}")
    print(
        f"server memory: {idle:.0f} MB idle, peak {mem.peak:.0f} MB with {args.users} sessions, {after:.0f} MB "
        f"after they closed ({(mem.peak - idle) / args.users:.1f} MB per session at the peak); whole run {wall:.0f} s"
    )


if __name__ == "__main__":
    main()
