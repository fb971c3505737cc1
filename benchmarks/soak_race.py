"""Students racing for a few minutes: each starts, joins, stops or leaves training races with random settings.

A fresh ``streamlit run app.py`` with a small store of finished races (``RESNET_VIZ_RACE_STORE``, default 4 here, so
it evicts) and one trainer. ``--users`` sessions loop for ``--minutes``: open the Training race with one of a few
small settings (so that students meet on the same race and reuse finished ones), press Start, look again a few
times, then press Stop, close the tab, or wait for the end. Prints the errors (exceptions, error boxes, failed runs),
what the Start runs showed (started, joined, queued, finished at once, refused), the store against its bound (its
largest count while the soak ran, sampled every 2 s, and at the end), and the server's resident memory after
warm-up (the first ``--warmup`` minutes): the median of the first tenth of the rest against the median of the last
tenth, the trend, and the server's threads after one warm-up visit against after everyone left. ``--png`` saves
the memory curve, ``--csv`` its samples.

Usage: ``python benchmarks/soak_race.py [--minutes 3] [--users 6] [--store 4] [--png docs/soak-race-memory.png]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)
from conftest import running_app  # noqa: E402
from loadgen import Session  # noqa: E402
from serverstats import (
    LargestWatch,
    MemoryWatch,
    memory_line,
    plot_memory,
    rss_mb,
    server_pid,
    thread_count,
    write_samples,
)  # noqa: E402

SETTINGS = [
    "depths=8&steps=30&batch=8",
    "depths=8&steps=40&batch=8",
    "depths=8,14&steps=30&batch=8",
    "depths=14&steps=30&batch=16",
    "depths=8&steps=60&batch=16",
    "depths=20&steps=30&batch=8",
    "depths=110&steps=20000&batch=1024",  # over the budget: refused
]


def what(run) -> str:
    texts = " ".join(run.texts)
    if "This race would take" in texts:
        return "refused (budget)"
    if "Trained on this server on" in texts:
        return "finished race opened"
    if "Waiting for a trainer" in texts:
        return "queued"
    if "you and 0 more" in texts:
        return "trains (alone)"
    if "Watching this race: you and" in texts:
        return "joined"
    return "other"


async def student(url: str, until: float, seen: Counter, errors: list, rng: random.Random) -> None:
    while time.time() < until:
        session = Session(url)
        await session.__aenter__()
        try:
            runs = [await session.open(f"/training_race?lang=en&{rng.choice(SETTINGS)}")]
            start = runs[-1].widgets.get("Start")
            if start is not None and not start[1].disabled:
                runs.append(await session.click("Start"))
            seen[what(runs[-1])] += 1
            for _ in range(rng.randint(1, 4)):
                await asyncio.sleep(rng.uniform(1, 5))
                runs.append(await session.again())
            choice = rng.random()
            stop = runs[-1].widgets.get("Stop")
            if choice < 0.4 and stop is not None and not stop[1].disabled:
                runs.append(await session.click("Stop"))
                seen["stopped"] += 1
            elif choice < 0.7:
                seen["left"] += 1  # closes the tab below
            else:
                seen["stayed to the end"] += 1
                while time.time() < until and "Trained on this server on" not in " ".join(runs[-1].texts):
                    await asyncio.sleep(2)
                    runs.append(await session.again())
                    if not any(t in " ".join(runs[-1].texts) for t in ("Step ", "Waiting", "Preparing")):
                        break
            errors.extend(e for run in runs for e in run.errors)
        except Exception as error:  # noqa: BLE001 - counted
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            await session.close()


async def soak(url: str, users: int, minutes: float, seed: int) -> tuple[Counter, list]:
    until = time.time() + minutes * 60
    seen: Counter = Counter()
    errors: list = []
    rng = random.Random(seed)
    await asyncio.gather(*(student(url, until, seen, errors, random.Random(rng.random())) for _ in range(users)))
    return seen, errors


def stored_races(folder: str) -> int:
    return sum(name.endswith(".json") for name in os.listdir(folder))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--users", type=int, default=6)
    parser.add_argument("--store", type=int, default=4, help="finished races the server keeps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=None, help="minutes of warm-up (default: a sixth)")
    parser.add_argument("--png", default=None)
    parser.add_argument("--csv", default=None, help="also write the memory samples (seconds, MB)")
    args = parser.parse_args()
    warmup = 60 * (args.warmup if args.warmup is not None else args.minutes / 6)
    folder = tempfile.mkdtemp(prefix="soak-races-")
    os.environ.update(
        RESNET_VIZ_RACES_DIR=folder,
        RESNET_VIZ_RACE_STORE=str(args.store),
        RESNET_VIZ_MAX_RACES="1",
        RESNET_VIZ_RACE_BUDGET="600",
    )
    with running_app() as url:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        # One visit first: the threads the server starts once (torch's, the warm-up's) are not a leak.
        asyncio.run(soak(url, 1, 0.05, args.seed))
        time.sleep(15)
        threads_before = thread_count(pid)
        with MemoryWatch(pid, every=2.0) as mem, LargestWatch(lambda: stored_races(folder)) as store:
            seen, errors = asyncio.run(soak(url, args.users, args.minutes, args.seed))
        time.sleep(15)  # a left race stops within seconds; the server releases closed sessions shortly after
        threads_after, final = thread_count(pid), rss_mb(pid)
        stored = stored_races(folder)
    print(f"{args.users} students for {args.minutes:g} min: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
    print(f"errors: {len(errors)}" + "".join(f"\n  {e[:160]}" for e in sorted(set(errors))[:10]))
    print(
        f"finished races stored: at most {store.largest} while the soak ran, {stored} at the end "
        f"(bound {args.store}); files: {sorted(os.listdir(folder))}"
    )
    print(memory_line(mem.samples, warmup, mem.peak, final))
    print(f"server threads: {threads_before} after one warm-up visit, {threads_after} after everyone left")
    if args.csv:
        write_samples(mem.samples, args.csv)
    if args.png:
        starts = sum(seen.values()) - seen["stopped"] - seen["left"] - seen["stayed to the end"]
        plot_memory(
            mem.samples,
            warmup,
            args.png,
            f"Training race: {args.users} students for {args.minutes:g} min, {starts} Starts "
            f"({time.strftime('%Y-%m-%d')})",
        )
        print(f"memory curve: {args.png}")


if __name__ == "__main__":
    main()
