"""Bytes the server sends for a rerun that changes nothing, page by page, with Streamlit's message cache on and off.

A rerun of an unchanged page is where the message cache saves the most: every element of 10 kB or more
(``global.minCachedMessageSize``) that the browser still holds goes out as a reference of about 100 bytes.
Each page is opened in one ``benchmarks/loadgen.py`` session (which reports its cached hashes as a browser does),
then run again with the same widgets; the second run's bytes are printed, once on a server with the cache as
Streamlit ships it and once with ``global.minCachedMessageSize = 1e12`` (no message cached).

    python benchmarks/ws_rerun_bytes.py
"""

from __future__ import annotations

import asyncio
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests"), os.path.join(ROOT, "benchmarks")]

from loadgen import Session  # noqa: E402

PAGES = [
    ("/lesson?step=3 (answer revealed)", "/lesson?step=3&lang=en", [("click", "Reveal the answer")]),
    ("/explain", "/explain?lang=en", []),
    ("/gradient_flow", "/gradient_flow?lang=en", []),
    ("/residual_vs_identity", "/residual_vs_identity?lang=en", []),
    ("/shattered_gradients", "/shattered_gradients?lang=en", []),
    ("/training_race (recorded race)", "/training_race?lang=en", []),
    ("/loss_landscape", "/loss_landscape?lang=en", []),
]


class CountingSession(Session):
    bytes_in = 0

    async def _receive(self):
        data = await asyncio.wait_for(self.ws.recv(), self.timeout)
        self.bytes_in += len(data)
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        fwd = ForwardMsg()
        fwd.ParseFromString(data)
        if fwd.metadata.cacheable and fwd.hash:
            self.cached_hashes.add(fwd.hash)
        return fwd


async def measure(url: str) -> dict[str, tuple[int, int]]:
    out = {}
    for name, path, actions in PAGES:
        async with CountingSession(url) as s:
            await s.open(path)
            for action, *args in actions:
                await getattr(s, action)(*args)
            first = s.bytes_in
            s.bytes_in = 0
            await s._rerun()  # the same widgets again: nothing changes
            out[name] = (first, s.bytes_in)
    return out


def main() -> None:
    from conftest import running_app

    results = {}
    for label, size in (("cache on (10 kB)", None), ("cache off (1e12)", "1e12")):
        if size is None:
            os.environ["STREAMLIT_GLOBAL_MIN_CACHED_MESSAGE_SIZE"] = "10000"
        else:
            os.environ["STREAMLIT_GLOBAL_MIN_CACHED_MESSAGE_SIZE"] = size
        with running_app() as url:
            results[label] = asyncio.run(measure(url))
    labels = list(results)
    print(f"| page | first visit | rerun, {labels[0]} | rerun, {labels[1]} |")
    print("|---|---:|---:|---:|")
    for name, *_rest in PAGES:
        first = results[labels[1]][name][0]
        print(
            f"| {name} | {first / 1000:.1f} kB | {results[labels[0]][name][1] / 1000:.1f} kB | "
            f"{results[labels[1]][name][1] / 1000:.1f} kB |"
        )


if __name__ == "__main__":
    main()
