"""The load generator (``benchmarks/loadgen.py``) gets what a browser gets: the same charts, in the same order."""

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

CHARTS_JS = """() => Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')).map(
    el => 'plotly:' + el.data.length + ':' + ((el.layout.title || {}).text || '').replace(/<[^>]*>/g, ''))"""


@pytest.mark.browser
@pytest.mark.slow  # a cold lesson step on a fresh server: seconds of gradient computation
def test_the_load_generator_receives_the_charts_chromium_draws(page, app_url):
    from loadgen import visit

    path = "/lesson?step=3&lang=en"
    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's sync API holds this thread's
        opened, revealed = pool.submit(asyncio.run, visit(app_url, path, ("click", "Reveal the answer"))).result()
    assert not opened.errors and not revealed.errors
    assert opened.figures == [] and "Reveal the answer" in opened.widgets
    charts = [f for f in revealed.figures if f.startswith("plotly:")]
    assert len(charts) == 2 and revealed.to_figure is not None

    page.goto(app_url + path)
    page.get_by_role("button", name="Reveal the answer").click()
    page.locator("[data-testid=stMain] .js-plotly-plot").nth(len(charts) - 1).wait_for()
    page.wait_for_function("document.querySelectorAll('[data-testid=stMain] .js-plotly-plot .main-svg').length > 0")
    assert page.evaluate(CHARTS_JS) == charts
