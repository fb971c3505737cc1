"""A live race in one Chromium page, the awkward-image walk through Explain's uploader in another: does the
Explain page's WebSocket survive?

Both pages' WebSocket frames are decoded (``streamlit.proto``): the script counts the bytes the server sends per
script run on each page, and replays the browser's message cache (Streamlit 1.67's frontend ``ForwardMsgCache``:
an entry expires once more than ``maxCachedMessageAge`` script runs have finished since it was last used) to say,
when a reference to a cached message arrives, whether the browser still holds it, and if not, when it dropped it.

    python benchmarks/ws_cache_walk.py --rounds 2                 # the configuration in .streamlit/config.toml
    python benchmarks/ws_cache_walk.py --rounds 2 --max-age 2     # Streamlit's default age, for comparison
    python benchmarks/ws_cache_walk.py --rounds 2 --busy 2        # two extra busy processes load the cores

Prints one line per upload and a summary: uploads done, whether the page lost its connection (the "Connection
error" dialog or a cache MISS), and the median bytes per script run on each page.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

SCRIPT_STATE = "document.querySelector('[data-testid=stApp]')?.dataset.testScriptState"
# The frontend's error dialog after a fatal WebSocket error ("Connection error", DISCONNECTED_FOREVER): the status
# widget in the header then reads "Error" ("Unable to connect to Streamlit server").
LOST = """() => {
    const text = document.body.innerText || '';
    return text.includes('Connection error') || text.includes('Cached ForwardMsg MISS')
        || !!document.querySelector('[data-testid=stStatusWidget] [title*="Unable to connect"]');
}"""


class CacheReplay:
    """What the browser's ForwardMsgCache holds, replayed from the frames one WebSocket carried."""

    def __init__(self, max_age: int):
        self.max_age = max_age
        self.entries: dict[str, list] = {}  # hash -> [run count when last used, fragment id]
        self.runs = 0
        self.new_session_seen = False
        self.misses: list[str] = []
        self.log: list[str] = []
        self.dropped: dict[str, int] = {}  # hash -> run count when it expired
        self.sent_hashes: set[str] = set()
        self.sent_ages: dict[str, int] = {}
        self.refs = 0
        self.at_risk: list[str] = []  # references to an element at the age limit when the rerun was requested

    def sent(self, data: bytes) -> None:
        msg = BackMsg()
        try:
            msg.ParseFromString(data)
        except Exception:  # noqa: BLE001 - not a BackMsg
            return
        if msg.WhichOneof("type") == "rerun_script":
            rerun = msg.rerun_script
            self.sent_hashes = set(rerun.cached_message_hashes)
            # How many finished runs each listed element has gone unused: one at the limit is dropped by one
            # more counted finish, which can arrive after this request has left.
            self.sent_ages = {h: self.runs - e[0] for h, e in self.entries.items() if h in self.sent_hashes}
            self.new_session_seen = False
            files = [
                len(w.file_uploader_state_value.uploaded_file_info)
                for w in rerun.widget_states.widgets
                if w.WhichOneof("value") == "file_uploader_state_value"
            ]
            self.log.append(
                f"-> rerun (fragment={rerun.fragment_id or '-'}, uploader files {files}, "
                f"{len(self.sent_hashes)} hashes: "
                f"{sorted(h[:8] for h in self.sent_hashes)}) at run {self.runs}"
            )

    def received(self, data: bytes) -> ForwardMsg:
        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "ref_hash":
            self.refs += 1
            if self.sent_ages.get(msg.ref_hash, -1) >= self.max_age:
                self.at_risk.append(msg.ref_hash)
            entry = self.entries.get(msg.ref_hash)
            if entry is None:
                when = self.dropped.get(msg.ref_hash)
                self.misses.append(msg.ref_hash)
                self.log.append(
                    f"<- ref {msg.ref_hash[:8]} MISS (run {self.runs}; dropped at run {when}; "
                    f"in the last rerun's list: {msg.ref_hash in self.sent_hashes})"
                )
            else:
                entry[0] = self.runs
                self.log.append(f"<- ref {msg.ref_hash[:8]} hit")
        elif msg.metadata.cacheable and msg.hash:
            if msg.hash in self.entries:
                self.entries[msg.hash][0] = self.runs
            else:
                fragment = msg.delta.fragment_id if kind == "delta" else ""
                self.entries[msg.hash] = [self.runs, fragment]
            element = msg.delta.new_element.WhichOneof("type") if kind == "delta" else kind
            self.log.append(f"<- cacheable {msg.hash[:8]} {element} ({len(data)} B)")
        elif kind == "new_session":
            self.new_session_seen = True
            self.log.append(f"<- new_session (run {self.runs})")
        elif kind == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            counted = status != "FINISHED_EARLY_FOR_RERUN" and self.new_session_seen and msg.metadata.HasField("run")
            fragments = list(msg.metadata.run.fragment_ids) if msg.metadata.HasField("run") else []
            if counted:
                self.runs += 1
                for h, (last, fragment) in list(self.entries.items()):
                    if fragments and (not fragment or fragment not in fragments):
                        continue
                    if self.runs - last > self.max_age:
                        del self.entries[h]
                        self.dropped[h] = self.runs
                        self.log.append(f"   drop {h[:8]} (last used at run {last})")
            self.log.append(f"<- script_finished {status} (counted: {counted}; run count {self.runs})")
        return msg


class PageTraffic:
    """Bytes received per script run on one page, and the cache replay."""

    def __init__(self, page, max_age: int):
        self.replay = CacheReplay(max_age)
        self.run_bytes: list[int] = []  # bytes between two script_finished messages
        self.fragment_run_bytes: list[int] = []
        self._bytes = 0
        page.on("websocket", self._attach)

    def _attach(self, ws) -> None:
        if "_stcore/stream" not in ws.url:
            return
        ws.on("framesent", lambda data: isinstance(data, bytes) and self.replay.sent(data))
        ws.on("framereceived", self._frame)

    def _frame(self, data) -> None:
        if not isinstance(data, bytes):
            return
        self._bytes += len(data)
        msg = self.replay.received(data)
        if msg.WhichOneof("type") == "script_finished":
            status = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            (self.fragment_run_bytes if status == "FINISHED_FRAGMENT_RUN_SUCCESSFULLY" else self.run_bytes).append(
                self._bytes
            )
            self._bytes = 0


def _busy(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def wait_idle(page, timeout_ms: int = 240_000) -> None:
    with contextlib.suppress(Exception):
        page.wait_for_function(f"{SCRIPT_STATE} === 'running'", timeout=2000)
    page.wait_for_function(f"{SCRIPT_STATE} === 'notRunning' || ({LOST})()", timeout=timeout_ms)


def start_race(page, url: str) -> None:
    page.goto(f"{url}/training_race?depths=20,56&steps=20000&batch=16")
    page.get_by_role("button", name="Start").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Start").click()
    # Started: Stop is enabled and the live view polls (queued, preparing or training).
    page.wait_for_function(
        "[...document.querySelectorAll('[data-testid=stMain] button')].some("
        "b => b.innerText.includes('Stop') && !b.disabled)",
        timeout=240_000,
    )


def walk(page, url: str, rounds: int, on_upload=None) -> tuple[int, bool]:
    """Upload every corpus file ``rounds`` times; (uploads done, whether the connection was lost)."""
    from image_corpus import bad_files, good_files

    files = [(name, data) for name, data, _size in good_files().values()] + list(bad_files().values())
    main = page.locator("[data-testid=stMain]")
    page.goto(f"{url}/explain")
    main.get_by_text("Grad-CAM for", exact=False).first.wait_for(timeout=240_000)
    wait_idle(page)
    main.get_by_role("radiogroup", name="Image", exact=True).get_by_text("Upload", exact=True).click()
    main.locator("input[type=file]").wait_for(state="attached")
    wait_idle(page)
    done = 0
    for _round in range(rounds):
        for name, data in files:
            mime = "image/png" if name.endswith(".png") else "application/octet-stream"
            main.locator("input[type=file]").set_input_files({"name": name, "mimeType": mime, "buffer": data})
            wait_idle(page)
            if page.evaluate(f"({LOST})()"):
                return done, True
            done += 1
            if on_upload:
                on_upload(done, name)
    page.wait_for_timeout(2000)
    return done, bool(page.evaluate(f"({LOST})()"))


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-age", type=int, help="global.maxCachedMessageAge (default: .streamlit/config.toml)")
    parser.add_argument("--min-size", type=float, help="global.minCachedMessageSize in bytes")
    parser.add_argument("--busy", type=int, default=0, help="extra busy-looping processes during the walk")
    parser.add_argument("--no-race", action="store_true", help="walk without a live race in the other page")
    parser.add_argument("--log", type=int, default=60, help="cache events printed before a MISS")
    args = parser.parse_args()
    if args.max_age is not None:
        os.environ["STREAMLIT_GLOBAL_MAX_CACHED_MESSAGE_AGE"] = str(args.max_age)
    if args.min_size is not None:
        os.environ["STREAMLIT_GLOBAL_MIN_CACHED_MESSAGE_SIZE"] = str(args.min_size)
    from conftest import CHROMIUM_ARGS, running_app
    from playwright.sync_api import sync_playwright
    from streamlit import config

    # The server reads STREAMLIT_GLOBAL_* like its command-line flags, over .streamlit/config.toml.
    max_age = int(
        os.environ.get("STREAMLIT_GLOBAL_MAX_CACHED_MESSAGE_AGE", config.get_option("global.maxCachedMessageAge"))
    )
    min_size = float(
        os.environ.get("STREAMLIT_GLOBAL_MIN_CACHED_MESSAGE_SIZE", config.get_option("global.minCachedMessageSize"))
    )
    busy = [multiprocessing.Process(target=_busy, args=(time.time() + 900,), daemon=True) for _ in range(args.busy)]
    started = time.time()
    with running_app() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        race_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        race_page = race_ctx.new_page()
        race_traffic = PageTraffic(race_page, max_age)
        if not args.no_race:
            start_race(race_page, url)
        for p in busy:
            p.start()
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(240_000)
        traffic = PageTraffic(page, max_age)

        def on_upload(n: int, name: str) -> None:
            print(f"upload {n:3d} {name:12s} {traffic.run_bytes[-1] if traffic.run_bytes else 0:9d} B", flush=True)

        try:
            done, lost = walk(page, url, args.rounds, on_upload)
        finally:
            for p in busy:
                p.terminate()
        misses = traffic.replay.misses
        if misses or lost:
            print("\n".join(traffic.replay.log[-args.log :]))
        browser.close()

    def median(xs):
        return f"{statistics.median(xs) / 1000:.1f} kB" if xs else "-"

    print(
        f"max age {max_age}, min size {min_size:.0f} B, "
        f"busy {args.busy}, race {'off' if args.no_race else 'on'}: {done} uploads, connection lost: {lost}, "
        f"cache misses replayed: {len(misses)}; references {traffic.replay.refs}, of them to an element at the "
        f"age limit {len(traffic.replay.at_risk)}; {time.time() - started:.0f} s"
    )
    print(
        f"bytes per script run: Explain {median(traffic.run_bytes)} (median of {len(traffic.run_bytes)}, "
        f"total {sum(traffic.run_bytes) / 1e6:.2f} MB); race page full runs {median(race_traffic.run_bytes)}, "
        f"fragment runs {median(race_traffic.fragment_run_bytes)} (median of {len(race_traffic.fragment_run_bytes)}, "
        f"total {sum(race_traffic.fragment_run_bytes) / 1e6:.2f} MB)"
    )
    return 1 if (lost or misses) else 0


if __name__ == "__main__":
    sys.exit(main_())
