"""A class at once, measured on the server: N lightweight sessions (``loadgen.py``) act at the same moment.

Each scenario starts a fresh ``streamlit run app.py`` (cold caches), so nothing one scenario computed helps the next:

- ``reveal``: N sessions open ``/lesson?step=3`` and click Reveal together (cold: the class shares one computation);
  then they all hide the answer and click Reveal again (cached).
- ``explain``: N sessions open Explain, choose Upload, and upload N different photos together (variants of the
  shipped sample photos).
- ``pages``: N sessions open each page together (a fresh server per page).
- ``race``: the Training race for a class (each part on a fresh server with an empty store of finished races and
  ``RESNET_VIZ_MAX_RACES=1``): one session starts the default race alone; N sessions press Start with the default
  settings at once (when each shows the live race, how many races the server trains, the race's wall time against
  the one alone); N sessions start N different races at once (each one's place and estimated start, the second
  race's estimated against its real start); one session opens ``?depths=110&steps=20000&batch=1024`` (the budget's
  note, nothing trains), first on a server with an empty cache folder (no step time measured yet), then on the
  next server, which has the step time the first one measured. ``--steps`` shortens the races.

Prints, per scenario, the time from the action to the first figure (median and slowest), against one session alone
on a fresh server measured in the same run, the errors (exceptions, error boxes, failed runs) and the server's
resident memory (idle, peak, after the sessions left). The client does not render anything, so the numbers are the
server's: ``bench_lesson_class.py`` is the end-to-end check with real browsers.

Usage: ``python benchmarks/bench_class_ws.py [--users 30 100] [--scenarios reveal explain pages race]
[--race-users 30] [--steps 400]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import statistics
import sys
import tempfile
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

from resnet_viz.race.autotune import CACHE_ENV  # noqa: E402
from resnet_viz.race.estimate import STEPS_FILE  # noqa: E402

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


RACE = "/training_race?lang=en&steps={steps}"
BAD_RACE = "/training_race?lang=en&depths=110&steps=20000&batch=1024"
LIVE_TEXTS = ("Waiting for a trainer", "Preparing the data", "Step ")
FINISHED_TEXT = "Trained on this server on"


def _fresh_store() -> str:
    """An empty store of finished races for the next server (the step times measured so far stay)."""
    os.environ["RESNET_VIZ_RACES_DIR"] = tempfile.mkdtemp(prefix="bench-races-")
    os.environ["RESNET_VIZ_MAX_RACES"] = "1"
    os.environ["RESNET_VIZ_RACE_BUDGET"] = "600"
    return os.environ["RESNET_VIZ_RACES_DIR"]


def _shows(run, texts) -> bool:
    return any(t in text for text in run.texts for t in texts)


def _text(run, start: str) -> str:
    return next((text for text in run.texts if start in text), "")


async def _until_finished(session, poll: float = 2.0, timeout: float = 3600) -> tuple[float, object]:
    """Rerun ``session``'s page until it shows the finished race; the time it took and the last run."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        run = await session.again()
        if _shows(run, (FINISHED_TEXT,)):
            return time.perf_counter() - started, run
        if run.errors or not _shows(run, LIVE_TEXTS):
            raise RuntimeError(f"the race did not go on: {run.errors} {[t[:120] for t in run.texts][-6:]}")
        await asyncio.sleep(poll)
    raise TimeoutError("the race did not finish")


def _stored(folder: str) -> list[dict]:
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as f:
                out.append(json.load(f))
    return out


def _seconds(note: str) -> float | None:
    found = re.search(r"It should start in about (?:(\d+) h )?(\d+) (min|s)", note)
    if not found:
        return None
    hours, value, unit = found.groups()
    return int(hours or 0) * 3600 + int(value) * (60 if unit == "min" else 1)


async def race_alone(url: str, steps: int) -> dict:
    async with Session(url) as s:
        await s.open(RACE.format(steps=steps))
        click = time.perf_counter()
        run = await s.click("Start")
        live = run.finished - click if _shows(run, LIVE_TEXTS) else None
        wall, _run = await _until_finished(s)
        return {"to_live": live, "click_to_finished": time.perf_counter() - click}


async def race_same(url: str, n: int, steps: int) -> dict:
    sessions = await _open_class(url, n, RACE.format(steps=steps))
    click = time.perf_counter()
    runs = await _together(sessions, lambda s: s.click("Start"))
    shown = sorted(r.finished - click for r in runs if r.finished and _shows(r, LIVE_TEXTS))
    errors = [e for r in runs for e in r.errors]
    counts = _text(runs[-1], "Races on this server now")
    wall, _last = await _until_finished(sessions[0])
    await _close(sessions)
    return {
        "live_times": shown,
        "errors": errors,
        "server_note": counts,
        "click_to_finished": time.perf_counter() - click,
        "n": n,
    }


async def race_different(url: str, n: int, steps: int) -> dict:
    sessions = [Session(url) for _ in range(n)]
    await asyncio.gather(*(s.__aenter__() for s in sessions))
    numbered = {id(s): i for i, s in enumerate(sessions)}
    await _together(sessions, lambda s: s.open(RACE.format(steps=steps + numbered[id(s)])))
    runs = [await s.click("Start") for s in sessions]  # one after another: the queue's order is known
    click = runs[0].started
    notes = [_text(r, "Waiting for a trainer") for r in runs]
    placed = sum(1 for note in notes if "place" in note and _seconds(note) is not None)
    second_note = notes[1]
    estimated = _seconds(second_note)
    told_at = runs[1].finished - click
    second = sessions[1]
    told = [(told_at, estimated)]  # (seconds after the first click, estimated seconds to the start), as it updates
    while True:  # until the second race leaves the queue
        run = await second.again()
        if not _shows(run, ("Waiting for a trainer",)):
            real = time.perf_counter() - click
            break
        told.append((run.finished - click, _seconds(_text(run, "Waiting for a trainer"))))
        await asyncio.sleep(1.0)
    await _close(sessions)
    return {
        "placed": placed,
        "n": n,
        "second_note": second_note,
        "second_estimated_s": estimated,
        "second_real_s": real - told_at,
        "errors_over_wait": [(at, (est + at) / real - 1) for at, est in told if est is not None],
        "errors": [e for r in runs for e in r.errors],
    }


async def race_bad_url(url: str, wait_for_probe: bool = False) -> dict:
    async with Session(url) as s:
        run = await s.open(BAD_RACE)
        if wait_for_probe:  # the page's background probe records this server's step time for the next server
            steps_file = os.path.join(os.environ[CACHE_ENV], STEPS_FILE)
            deadline = time.time() + 60
            while not os.path.exists(steps_file) and time.time() < deadline:
                await asyncio.sleep(0.2)
        return {"to_note": run.to_end, "note": _text(run, "This race would take"), "errors": run.errors}


def race_scenarios(users: int, steps: int, parts=("bad", "alone", "same", "different")) -> list[str]:
    lines = []

    def serve(scenario):
        folder = _fresh_store()
        with running_app() as url:
            pid = server_pid(int(url.rsplit(":", 1)[1]))
            asyncio.run(_warm_process(url))
            with MemoryWatch(pid) as mem:
                out = asyncio.run(scenario(url))
            out["stored"] = _stored(folder)
            out["peak_mb"] = mem.peak
        return out

    if "bad" in parts:
        # A fresh server on a fresh machine: no step time in its cache folder yet (the page probes in the background).
        os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="bench-cache-")
        bad_cold = serve(lambda url: race_bad_url(url, wait_for_probe=True))
        lines.append(_bad_line("fresh server, no step time measured yet", bad_cold))
    if "alone" in parts or "same" in parts:
        alone = serve(lambda url: race_alone(url, steps))
        alone_wall = alone["stored"][0]["trained"]["wall_s"] if alone["stored"] else float("nan")
        lines.append(
            f"one visitor alone: live view {alone['to_live']:.2f} s after Start; the race's wall time (trainer to end) "
            f"{alone_wall:.1f} s; {len(alone['stored'])} race stored"
        )
    if "same" in parts:
        same = serve(lambda url: race_same(url, users, steps))
        walls = [r["trained"]["wall_s"] for r in same["stored"]]
        wall = walls[0] if walls else float("nan")
        live = same["live_times"]
        lines.append(
            f"{users} sessions, default settings, Start at once: {len(live)} of {same['n']} show the live race, "
            f"{live[0]:.2f}-{live[-1]:.2f} s after the click (spread {live[-1] - live[0]:.2f} s); "
            f"races trained and stored: {len(same['stored'])}; its wall time {wall:.1f} s "
            f"= {wall / alone_wall:.2f}x the race alone; errors {len(same['errors'])}; "
            f"server note: {same['server_note']!r}; peak {same['peak_mb']:.0f} MB"
            if live
            else f"{users} sessions: none showed the live race; errors {same['errors'][:3]}"
        )
    if "different" in parts:
        different = serve(lambda url: race_different(url, users, steps))
        est, real = different["second_estimated_s"], different["second_real_s"]
        over_wait = ", ".join(f"{at:.0f} s: {error * 100:+.0f}%" for at, error in different["errors_over_wait"][::5])
        lines.append(
            f"{users} sessions, {users} different settings: {different['placed']} of {users - 1} queued races told "
            f"a place and a start; the second race: estimated start {est} s, real start {real:.1f} s after its note "
            f"({(est / real - 1) * 100 if est and real else float('nan'):+.0f}%); errors {len(different['errors'])}"
        )
        lines.append(f"  the second race's estimated start against its real start, as the note updated: {over_wait}")
    if "bad" in parts:
        lines.append(_bad_line("server with the step time its first visit measured", serve(race_bad_url)))
    return lines


def _bad_line(name: str, out: dict) -> str:
    return (
        f"?depths=110&steps=20000&batch=1024, {name}: note after {out['to_note']:.2f} s, races stored "
        f"{len(out['stored'])}: {out['note'][:160]!r}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[30, 100])
    parser.add_argument(
        "--scenarios", nargs="+", default=["reveal", "explain", "pages"], choices=["reveal", "explain", "pages", "race"]
    )
    parser.add_argument("--race-users", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400, help="steps of the races in the race scenario")
    parser.add_argument(
        "--race-parts",
        nargs="+",
        default=["bad", "alone", "same", "different"],
        choices=["bad", "alone", "same", "different"],
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
    if "race" in args.scenarios:
        print("\n".join(race_scenarios(args.race_users, args.steps, args.race_parts)), flush=True)
        if args.scenarios == ["race"]:
            return
    print("\n| what | sessions | median s to the figure | slowest s | errors |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    print("\n".join(memory))


if __name__ == "__main__":
    main()
