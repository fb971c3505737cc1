"""Under class load, a browser session keeps its connection: a live race trains in one page while another walks
every awkward image file (tests/image_corpus.py) through Explain's uploader, twice.

With Streamlit's message cache on (``global.minCachedMessageSize`` 10 kB), the Explain page's browser drops a
cached chart one finished run too early when the uploader sends two reruns back to back on a busy server, the
server then refers to it, and the page ends with "Connection error: ... Cached ForwardMsg MISS" in
``DISCONNECTED_FOREVER`` (docs/deployment.md, "Streamlit's message cache is off"). Whether that happens in one
walk depends on timing, so the test also replays the browser's cache from the page's WebSocket frames and fails on
any reference to an element that was at the cache's age limit when the browser asked for the run: one more
finished run counted in between, and that reference is a MISS. ``.streamlit/config.toml`` turns the cache off;
the test fails when it is on again: ``STREAMLIT_GLOBAL_MIN_CACHED_MESSAGE_SIZE=10000 python -m pytest
tests/test_under_load_browser.py``.
"""

import os
import sys

import pytest
from conftest import running_app, screenshot
from image_corpus import bad_files, good_files

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROUNDS = 2


def test_the_upload_walk_beside_a_live_race_never_loses_the_connection(browser):
    from streamlit import config
    from ws_cache_walk import PageTraffic, start_race, walk

    max_age = int(
        os.environ.get("STREAMLIT_GLOBAL_MAX_CACHED_MESSAGE_AGE", config.get_option("global.maxCachedMessageAge"))
    )

    with running_app() as url:
        race_context = browser.new_context(viewport={"width": 1400, "height": 1000})
        walk_context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            race_page = race_context.new_page()
            race_page.set_default_timeout(240_000)
            race = PageTraffic(race_page, max_age)
            start_race(race_page, url)

            page = walk_context.new_page()
            page.set_default_timeout(240_000)
            traffic = PageTraffic(page, max_age)
            done, lost = walk(page, url, ROUNDS)
            if lost or traffic.replay.misses:
                screenshot(page, "under-load-connection-lost")
            log = "\n".join(traffic.replay.log[-40:])
            assert not lost, f"the Explain page lost its connection after {done} uploads:\n{log}"
            assert traffic.replay.misses == [], log
            # Whether it breaks depends on timing; whether it can is in the frames: a reference to an element that
            # one more finished run, counted after the rerun request left, would have dropped.
            assert traffic.replay.at_risk == [], f"{len(traffic.replay.at_risk)} references at risk:\n{log}"
            assert done == ROUNDS * (len(good_files()) + len(bad_files()))
            # The race stayed live (its view polling) through the whole walk.
            assert len(race.fragment_run_bytes) >= 20, race.fragment_run_bytes
            assert race_page.get_by_role("button", name="Stop").is_enabled()
        finally:
            walk_context.close()
            race_context.close()
