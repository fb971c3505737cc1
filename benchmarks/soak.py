"""An hour of class: lightweight sessions (``loadgen.py``) join, work and leave, while the server is watched.

Each simulated student joins, walks the lesson (Next, Reveal on every step), opens every page, uploads a photo to
Explain and a checkpoint (the bundled twins) to Gradient flow, starts a training race and stops it, then leaves;
a new student takes the place of one who left, so ``--users`` sessions are connected at any time. The server's
resident memory is sampled every 2 s.

Prints the errors; the memory after warm-up (the first ``--warmup`` minutes): the median of the first tenth of
the rest against the median of the last tenth, and the trend; and, once every session has left, the server's
threads and open files against the same counts after one warm-up visit (what a session that left would have
held), and the temporary files that appeared meanwhile. ``--png`` saves the memory curve, ``--csv`` its samples.

Usage: ``python benchmarks/soak.py --minutes 60 --users 30 --png docs/soak-memory.png [--csv memory.csv]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)
from bench_class_ws import PAGES, UPLOAD_LABEL, photo_variants  # noqa: E402
from conftest import running_app  # noqa: E402
from loadgen import Session  # noqa: E402
from serverstats import (  # noqa: E402
    MemoryWatch,
    memory_line,
    open_files,
    plot_memory,
    rss_mb,
    server_pid,
    thread_count,
    write_samples,
)

ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from resnet_viz.teaching import lesson_steps  # noqa: E402
from ui.routing import app_has_page  # noqa: E402

LESSON_STEPS = len(lesson_steps(app_has_page))
CHECKPOINT_LABEL = "Checkpoint (.safetensors or a torch state dict)"
with open(os.path.join(ROOT, "resnet_viz", "assets", "models", "shapes-20.safetensors"), "rb") as _f:
    CHECKPOINT = _f.read()


async def student(url: str, number: int, photo: bytes, errors: list, counts: dict) -> None:
    """One visit, start to leave; every failed run is recorded, not raised."""
    rng = random.Random(number)

    async def act(session, method, *args):
        try:
            run = await getattr(session, method)(*args)
            errors.extend(run.errors)
            counts[method] = counts.get(method, 0) + 1
        except Exception as error:  # noqa: BLE001 - counted, the soak goes on
            errors.append(f"{method}{args[:1]}: {type(error).__name__}: {error}")

    async with Session(url) as s:
        lang = "zh" if number % 4 == 3 else "en"  # a quarter of the class in Chinese
        await act(s, "open", f"/lesson?step=1&lang={lang}")
        if lang == "en":  # the English labels drive the walk; a Chinese session only opens pages
            for _step in range(LESSON_STEPS):
                await act(s, "click", "Reveal the answer")
                await asyncio.sleep(rng.uniform(0.5, 2))
                await act(s, "click", "Next")
            await act(s, "open", "/explain?lang=en")
            await act(s, "choose", "Image", "Upload")
            await act(s, "upload", UPLOAD_LABEL, f"student{number}.jpg", photo)
            if number % 3 == 0:  # a third of the class also brings a model
                await act(s, "open", "/gradient_flow?lang=en")
                await act(s, "upload", CHECKPOINT_LABEL, "twins.safetensors", CHECKPOINT, "application/octet-stream")
            await act(s, "open", "/training_race?lang=en")
            await act(s, "click", "Start")
            await asyncio.sleep(rng.uniform(1, 3))
            await act(s, "open", "/training_race?lang=en")
            await act(s, "click", "Stop")
        for path in PAGES:
            await act(s, "open", f"{path}?lang={lang}")
            await asyncio.sleep(rng.uniform(0.2, 1))


async def class_hour(url: str, users: int, minutes: float, photos: list[bytes], errors: list, counts: dict) -> int:
    deadline = time.perf_counter() + 60 * minutes
    joined = itertools.count()

    async def seat() -> int:
        visits = 0
        while time.perf_counter() < deadline:
            number = next(joined)
            await student(url, number, photos[number % len(photos)], errors, counts)
            visits += 1
        return visits

    return sum(await asyncio.gather(*(seat() for _ in range(users))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--warmup", type=float, default=None, help="minutes of warm-up (default: a sixth)")
    parser.add_argument("--png", default=None)
    parser.add_argument("--csv", default=None, help="also write the memory samples (seconds, MB)")
    args = parser.parse_args()
    warmup = 60 * (args.warmup if args.warmup is not None else args.minutes / 6)
    photos = photo_variants(16)
    errors: list[str] = []
    counts: dict[str, int] = {}
    with running_app() as url:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        # One visit first: the threads the server starts once (torch's, the upload thread pool) are not a leak.
        asyncio.run(student(url, 0, photos[0], errors, counts))
        time.sleep(15)
        threads_before, files_before = thread_count(pid), open_files(pid)
        temp_before = set(os.listdir(tempfile.gettempdir()))
        with MemoryWatch(pid, every=2.0) as mem:
            visits = asyncio.run(class_hour(url, args.users, args.minutes, photos, errors, counts))
        time.sleep(15)  # the server releases a closed session's resources shortly after it leaves
        threads_after, files_after = thread_count(pid), open_files(pid)
        final = rss_mb(pid)
        temp_new = sorted(set(os.listdir(tempfile.gettempdir())) - temp_before)
    print(f"{args.minutes:g} minutes, {args.users} sessions at a time, {visits} visits; runs: {counts}")
    print(f"errors: {len(errors)}" + "".join(f"\n  {e[:160]}" for e in sorted(set(errors))[:10]))
    print(memory_line(mem.samples, warmup, mem.peak, final))
    print(f"server threads: {threads_before} after one warm-up visit, {threads_after} after everyone left")
    left = sorted(set(files_after) - set(files_before))
    print(f"files the server holds open that it did not before: {len(left)}" + "".join(f"\n  {f}" for f in left))
    print(
        f"new entries in {tempfile.gettempdir()} (any process's): {len(temp_new)}"
        + "".join(f"\n  {f}" for f in temp_new[:10])
    )
    if args.csv:
        write_samples(mem.samples, args.csv)
    if args.png:
        plot_memory(
            mem.samples,
            warmup,
            args.png,
            f"{args.users} sessions for {args.minutes:g} min: {visits} visits ({time.strftime('%Y-%m-%d')})",
        )
        print(f"memory curve: {args.png}")


if __name__ == "__main__":
    main()
