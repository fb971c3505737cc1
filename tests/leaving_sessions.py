"""What sessions that leave leave behind: the app's server and two visitors in one process, as JSON on stdout.

``tests/test_classroom.py`` runs this in a subprocess (Streamlit's runtime is one per process). The server runs
in a thread; the visitors are the load generator's WebSocket sessions (``benchmarks/loadgen.py``), so this
process can look at the server's own objects before and after the visitors close their tabs:

* visitor A uploads twins in the sidebar and starts a long training race. Where no engine choice is remembered
  the race first times throwaway races of each engine and precision (``resnet_viz/race/autotune.py``); those
  belong to no visitor, so the report counts A's races: the ones started in a thread of their own;
* visitor B opens Gradient flow on a view nobody has computed while every work slot is taken, so it waits in line.

Both leave. The report says what each held before leaving and what remains afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import weakref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "tests")]
from conftest import _free_port  # noqa: E402

CHECKPOINT_LABEL = "Checkpoint (.safetensors or a torch state dict)"
LONG_RACE = "/training_race?depths=20&steps=20000&lang=en"
COLD_FLOW = "/gradient_flow?seed=7&lang=en"  # a view no other step of this run computes


def start_server(port: int):
    """The app's Streamlit server in a daemon thread; returns once it answers."""
    from streamlit.web import bootstrap
    from streamlit.web.server import Server

    os.chdir(ROOT)
    bootstrap.load_config_options(
        {
            "server.port": port,
            "server.address": "127.0.0.1",
            "server.headless": True,
            "server.fileWatcherType": "none",
            "browser.gatherUsageStats": False,
            "server.disconnectedSessionTTL": 1,
        }
    )
    server = Server(os.path.join(ROOT, "app.py"), False)
    started = threading.Event()

    async def serve() -> None:
        await server.start()
        started.set()
        await server.stopped

    threading.Thread(target=asyncio.run, args=(serve(),), daemon=True, name="streamlit-server").start()
    if not started.wait(60):
        raise RuntimeError("the server did not start within 60 s")
    return server


def wait_for(condition, timeout: float = 60, what: str = "", every: float = 0.05) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


CREATED: dict[type, weakref.WeakSet] = {}


def watch(kind: type) -> None:
    """Keep a weak reference to every ``kind`` created from now on (gc.get_objects() would race other threads)."""
    CREATED[kind] = weakref.WeakSet()
    init = kind.__init__

    def watched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        CREATED[kind].add(self)

    kind.__init__ = watched_init


def live(kind: type) -> list:
    gc.collect()
    return list(CREATED[kind])


async def visitors(url: str, report: dict) -> None:
    from loadgen import Session

    from resnet_viz.race.engine import Race
    from ui.models import SessionModels
    from ui.work import work_slots

    def started(race) -> bool:
        """A race a visitor started (``Race.start()``: a "training-race" thread of its own), not one of the engine
        measurement's throwaway races, which run inside the race they measure for (``Race.run_here()``)."""
        return race._thread is not None

    throwaway_seen = [0]

    def training() -> bool:
        """A's race trains (its engine measurement, if any, is over); notes how many throwaway races were alive."""
        races = [r for r in live(Race) if not r.done]
        throwaway_seen[0] = max(throwaway_seen[0], sum(not started(r) for r in races))
        return any(started(r) and r.status == "running" for r in races)

    with open(os.path.join(ROOT, "resnet_viz", "assets", "models", "shapes-20.safetensors"), "rb") as f:
        checkpoint = f.read()

    a = await Session(url).__aenter__()
    run = await a.open(LONG_RACE)
    run = await a.click("Start")
    report["a_errors"] = list(run.errors)
    try:  # polled twice a second: each look runs gc.collect(), which holds the GIL the race's thread needs
        await asyncio.to_thread(wait_for, training, 240, "the race to train", 0.5)
    except TimeoutError:
        report["races_seen"] = [(r.status, r.message) for r in live(Race)]
        raise
    races = [r for r in live(Race) if started(r) and not r.done]
    report["a_running_races"] = len(races)
    report["throwaway_races_seen"] = throwaway_seen[0]  # alive beside A's race while it measured its engine
    report["race_threads"] = sorted(t.name for t in threading.enumerate() if t.name.startswith("training-race"))

    slots = work_slots()
    held = 0
    while slots.active < slots.capacity:  # every slot taken: B's computation has to wait in line
        slots.acquire(object())
        held += 1
    b = await Session(url).__aenter__()
    b_open = asyncio.create_task(b.open(COLD_FLOW))
    await asyncio.to_thread(wait_for, lambda: slots.waiting == 1, 60, "B to wait for a work slot")
    report["b_waiting"] = slots.waiting
    # A uploads once B's page has run its sidebar: only A's leaving can release A's twins
    run = await a.upload(CHECKPOINT_LABEL, "twins.safetensors", checkpoint, "application/octet-stream")
    report["a_errors"] += run.errors
    uploaded = [m.twins for m in live(SessionModels) if m.twins is not None]
    report["a_uploaded_models"] = len(uploaded)
    model_refs = [weakref.ref(net) for twins in uploaded for net in twins[:2]]
    del uploaded

    b_open.cancel()
    await b.close()
    await a.close()
    left = time.time()
    await asyncio.to_thread(wait_for, lambda: slots.waiting == 0, 30, "B to leave the line")
    report["b_left_line_s"] = round(time.time() - left, 2)
    report["waiting_after_leaving"] = slots.waiting
    report["slots_held_here"] = held
    report["slots_active_with_ours"] = slots.active  # only the slots this process holds: B computed nothing
    for _ in range(held):
        slots.release()
    await asyncio.to_thread(wait_for, lambda: all(r.done for r in races), 30, "the race to stop")
    for race in races:
        race.join(30)
    report["races_running_after_leaving"] = sum(not r.done for r in races)
    report["race_status_after_leaving"] = sorted({r.status for r in races})
    await asyncio.sleep(1)
    report["uploaded_models_after_leaving"] = sum(m.twins is not None for m in live(SessionModels))
    report["uploaded_nets_still_alive"] = sum(ref() is not None for ref in model_refs)
    report["slots_active_after_leaving"] = slots.active
    report["engine_choice"] = sorted({r.engine_choice.how for r in races if r.engine_choice})
    report["race_threads_after_leaving"] = sorted(
        t.name for t in threading.enumerate() if t.name.startswith("training-race")
    )


def main() -> None:
    from resnet_viz.race.engine import Race
    from ui.models import SessionModels

    watch(Race)
    watch(SessionModels)
    port = _free_port()
    start_server(port)
    report: dict = {}
    try:
        asyncio.run(visitors(f"http://127.0.0.1:{port}", report))
    except Exception as error:  # noqa: BLE001 - reported, the test shows it
        report["error"] = f"{type(error).__name__}: {error}"
    print("REPORT " + json.dumps(report), flush=True)
    os._exit(0)  # the server thread is a daemon; skip its slow shutdown


if __name__ == "__main__":
    main()
