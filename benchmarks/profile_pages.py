"""Where one cached script run of each page spends its time: figures, serialisation, translation, the URL.

Runs ``app.py`` in Streamlit's AppTest, opens each page (lesson step 3 revealed), runs it once to fill the caches,
then profiles further runs of the same view with cProfile. Prints, per page, the median wall time of a cached run
and the share of the profiled time inside each part (cumulative time of the outermost call of each group).

Usage: ``python benchmarks/profile_pages.py [--runs 5] [--top 0]`` (``--top N`` also prints the N most expensive
functions of each page).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

VIEWS = [
    ("pages/home.py", {}),
    ("pages/lesson.py", {"step": "3"}),
    ("pages/explain.py", {}),
    ("pages/gradient_flow.py", {}),
    ("pages/residual_vs_identity.py", {}),
    ("pages/training_race.py", {}),
    ("pages/loss_landscape.py", {}),
]

# Part of a run -> the functions whose cumulative time is that part (file fragment, function name).
PARTS = {
    "building figures": [
        ("resnet_viz/", "_figure"),
        ("resnet_viz/", "figure"),
        ("plotly/basedatatypes.py", "__init__"),
    ],
    "serialising figures": [("streamlit/elements/plotly_chart.py", "plotly_chart"), ("plotly/io/_json.py", "to_json")],
    "images": [("streamlit/elements/lib/image_utils.py", "marshall_images")],
    "translating": [("resnet_viz/i18n.py", "gettext"), ("resnet_viz/i18n.py", "_")],
    "reading and writing the URL": [("ui/url_state.py", "read"), ("ui/url_state.py", "write")],
    "cache look-ups": [("streamlit/runtime/caching/cache_utils.py", "__call__")],
    "sidebar (app.py)": [("ui/models.py", "checkpoint_sidebar")],
    # AppTest compiles the scripts on every run; the server compiles each once (its script cache).
    "compiling scripts (AppTest only)": [("streamlit/runtime/scriptrunner/script_cache.py", "get_bytecode")],
}


def _part_times(stats: pstats.Stats) -> dict[str, float]:
    out = {}
    for part, patterns in PARTS.items():
        best = 0.0
        for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            for fragment, fname in patterns:
                if fragment in path and (name == fname or (fname == "_figure" and name.endswith("_figure"))):
                    best = max(best, ct)
        out[part] = best
    return out


def _profiled_runs(profiler: cProfile.Profile):
    """Profiles every script run (they run in their own thread) while the block lasts."""
    from streamlit.runtime.scriptrunner import script_runner

    original = script_runner.ScriptRunner._run_script

    def run_script(self, *args, **kwargs):
        profiler.enable()
        try:
            return original(self, *args, **kwargs)
        finally:
            profiler.disable()

    class Patch:
        def __enter__(self):
            script_runner.ScriptRunner._run_script = run_script

        def __exit__(self, *exc):
            script_runner.ScriptRunner._run_script = original

    return Patch()


def profile_view(page: str, params: dict, runs: int, top: int) -> None:
    from conftest import open_app_page

    at = open_app_page(page, params)
    if page.endswith("lesson.py"):
        at.button(key="lesson_reveal_exploding").click().run()
    at.run()  # caches filled
    walls = []
    profiler = cProfile.Profile()
    with _profiled_runs(profiler):
        for _ in range(runs):
            start = time.perf_counter()
            at.run()
            walls.append(time.perf_counter() - start)
    assert not at.exception, at.exception
    stats = pstats.Stats(profiler)
    total = sum(walls)
    parts = _part_times(stats)
    shares = ", ".join(f"{part} {100 * t / total:.0f}%" for part, t in parts.items() if t > 0.005 * total)
    print(f"{page}: cached run {1e3 * statistics.median(walls):.0f} ms (median of {runs}); {shares}")
    if top:
        stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("--pages", nargs="*", default=None, help="page files to profile (all by default)")
    args = parser.parse_args()
    for page, params in VIEWS:
        if args.pages and page not in args.pages:
            continue
        profile_view(page, params, args.runs, args.top)


if __name__ == "__main__":
    main()
