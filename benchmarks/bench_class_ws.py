"""A class at once, measured on the server: N lightweight sessions (``loadgen.py``) act at the same moment.

Each scenario starts a fresh ``streamlit run app.py`` (cold caches), so nothing one scenario computed helps the next:

- ``reveal``: N sessions open ``/lesson?step=3`` and click Reveal together (cold: the class shares one computation);
  then they all hide the answer and click Reveal again (cached).
- ``explain``: N sessions open Explain, choose Upload, and upload N different photos together (variants of the
  shipped sample photos).
- ``pages``: N sessions open each page together (a fresh server per page).

Prints, per scenario, the time from the action to the first figure (median and slowest), against one session alone
on a fresh server measured in the same run, the errors (exceptions, error boxes, failed runs) and the server's
resident memory (idle, peak, after the sessions left). The client does not render anything, so the numbers are the
server's: ``bench_lesson_class.py`` is the end-to-end check with real browsers.

Usage: ``python benchmarks/bench_class_ws.py [--users 30 100] [--scenarios reveal explain pages]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)
from conftest import running_app  # noqa: E402  (the browser tests' server)
from loadgen import Run, Session  # noqa: E402
from serverstats import MemoryWatch, rss_mb, server_pid  # noqa: E402

LESSON = "/lesson?step=3&lang=en"
PAGES = ["/", "/lesson", "/explain", "/gradient_flow", "/residual_vs_identity", "/training_race", "/loss_landscape"]
UPLOAD_LABEL = "Upload an image (PNG, JPEG, WebP, BMP or GIF; at most 20 MB)"


def photo_variants(n: int) -> list[bytes]:
    """``n`` different JPEG photos: the shipped samples, shifted and with their colour channels rotated."""
    folder = os.path.join(ROOT, "resnet_viz", "assets", "samples")
    sources = [np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")) for f in sorted(os.listdir(folder))]
    out = []
    for i in range(n):
        arr = np.roll(sources[i % len(sources)], 17 * i, axis=1)[..., [(i + c) % 3 for c in range(3)]]
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


class Result:
    """Times to the first figure and errors of one action done by a whole class."""

    def __init__(self, name: str, runs):
        self.name, self.runs = name, runs
        self.times = [r.to_figure if r.to_figure is not None else float("inf") for r in runs]
        self.errors = [e for r in runs for e in r.errors] + [
            f"no figure ({r.status})" for r in runs if r.to_figure is None
        ]

    def line(self, alone: float | None = None) -> str:
        median, slowest = statistics.median(self.times), max(self.times)
        ratio = f" ({slowest / alone:.1f}x one session alone, {alone:.2f} s)" if alone else ""
        return f"| {self.name} | {len(self.runs)} | {median:.2f} | {slowest:.2f}{ratio} | {len(self.errors)} |"


async def _together(sessions, action) -> list:
    """Every session does ``action(session)`` at the same moment; their runs (a failed action: a run with its
    error, so one session's failure is counted, not fatal)."""

    async def attempt(session):
        started = time.perf_counter()
        try:
            return await action(session)
        except Exception as error:  # noqa: BLE001 - reported in the table
            return Run(started=started, errors=[f"{type(error).__name__}: {error}"])

    return await asyncio.gather(*(attempt(s) for s in sessions))


async def _open_class(url: str, n: int, path: str) -> list[Session]:
    sessions = [Session(url) for _ in range(n)]
    await asyncio.gather(*(s.__aenter__() for s in sessions))
    await _together(sessions, lambda s: s.open(path))
    return sessions


async def _close(sessions) -> None:
    await asyncio.gather(*(s.close() for s in sessions))


async def reveal(url: str, n: int) -> list[Result]:
    sessions = await _open_class(url, n, LESSON)
    cold = Result(
        f"reveal step 3, cold, {n} sessions", await _together(sessions, lambda s: s.click("Reveal the answer"))
    )
    await _together(sessions, lambda s: s.click("Hide the answer"))
    cached = Result(
        f"reveal step 3, cached, {n} sessions", await _together(sessions, lambda s: s.click("Reveal the answer"))
    )
    await _close(sessions)
    return [cold, cached]


async def explain(url: str, n: int, photos: list[bytes]) -> list[Result]:
    sessions = await _open_class(url, n, "/explain?lang=en")
    await _together(sessions, lambda s: s.choose("Image", "Upload"))
    numbered = {id(s): i for i, s in enumerate(sessions)}
    runs = await _together(
        sessions, lambda s: s.upload(UPLOAD_LABEL, f"student{numbered[id(s)]}.jpg", photos[numbered[id(s)]])
    )
    await _close(sessions)
    return [Result(f"Explain: upload a different photo, {n} sessions", runs)]


async def open_page(url: str, n: int, path: str) -> list[Result]:
    sessions = [Session(url) for _ in range(n)]
    await asyncio.gather(*(s.__aenter__() for s in sessions))
    runs = await _together(sessions, lambda s: s.open(path + "?lang=en" if "?" not in path else path))
    await _close(sessions)
    return [Result(f"open {path}, {n} sessions", runs)]


def measure(scenario, n: int) -> tuple[list[Result], dict]:
    """Runs ``scenario(url, n)`` on a fresh server; its results and the server's memory."""
    with running_app() as url:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        asyncio.run(_warm_process(url))
        idle = rss_mb(pid)
        with MemoryWatch(pid) as mem:
            results = asyncio.run(scenario(url, n))
        time.sleep(1)
        return results, {"idle": idle, "peak": mem.peak, "after": rss_mb(pid)}


async def _warm_process(url: str) -> None:
    # One visit to Home: the server imports the app's modules once, as it does for the first visitor of the day.
    async with Session(url) as s:
        await s.open("/?lang=en")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[30, 100])
    parser.add_argument(
        "--scenarios", nargs="+", default=["reveal", "explain", "pages"], choices=["reveal", "explain", "pages"]
    )
    parser.add_argument("--explain-users", type=int, default=30)
    parser.add_argument("--page-users", type=int, default=30)
    args = parser.parse_args()
    rows, memory = [], []

    def record(results, mem, alone_results=None):
        for i, r in enumerate(results):
            alone = alone_results[i].times[0] if alone_results else None
            rows.append(r.line(alone))
            for e in sorted(set(r.errors))[:3]:
                rows.append(f"|   error: {e[:100]} | | | | |")
        memory.append(
            f"{results[0].name}: server {mem['idle']:.0f} MB idle, peak {mem['peak']:.0f} MB, "
            f"{mem['after']:.0f} MB after the sessions left"
        )

    if "reveal" in args.scenarios:
        alone, mem = measure(reveal, 1)
        record(alone, mem)
        for n in args.users:
            record(*measure(reveal, n), alone)
    if "explain" in args.scenarios:
        photos = photo_variants(args.explain_users + 1)
        alone, mem = measure(lambda url, n: explain(url, n, photos[-1:]), 1)
        record(alone, mem)
        record(*measure(lambda url, n: explain(url, n, photos), args.explain_users), alone)
    if "pages" in args.scenarios:
        for path in PAGES:
            alone, _mem = measure(lambda url, n: open_page(url, n, path), 1)
            record(*measure(lambda url, n: open_page(url, n, path), args.page_users), alone)
    print("\n| what | sessions | median s to the figure | slowest s | errors |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("\n".join(memory))


if __name__ == "__main__":
    main()
