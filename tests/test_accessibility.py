"""Every page passes axe-core's WCAG 2.0/2.1 A and AA rules, in English, Chinese and presenter mode; a chart's text
alternative is its accessible name, not a caption on screen.

axe-core (MPL-2.0, https://github.com/dequelabs/axe-core) is vendored under ``tests/vendor/axe-core/``, so the test
runs offline; it is injected into each page in Debian's Chromium. A violation of impact "serious" or "critical" in
the app's own content fails the test; ``STREAMLIT_OWN`` lists the ones that come from Streamlit's own widgets and
cannot be fixed from this app (each with the element it is found on).
"""

import os

import pytest
from conftest import DRAWING, app_pages, open_app_page, screenshot, wait_for_idle

AXE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor", "axe-core", "axe.min.js")
# Every page the app registers; the lesson at its first step (the code block) and at a step with a chart.
PAGES = [page for page in app_pages() if page != "lesson"] + ["lesson?step=1", "lesson?step=3"]
VIEWS = [(p, "en", False) for p in PAGES] + [(p, "zh", False) for p in PAGES] + [(p, "en", True) for p in PAGES]
VIEWPORT = {"width": 1400, "height": 1000}
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# (rule, a fragment of the failing element's HTML): found in Streamlit's own markup, not in this app's content.
STREAMLIT_OWN: list[tuple[str, str]] = []

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').flatMap(
    v => v.nodes.map(n => ({rule: v.id, impact: v.impact, target: n.target.join(' '), html: n.html.slice(0, 200),
                            why: (n.failureSummary || '').slice(0, 300)})));
}"""


def _url(base: str, page: str, lang: str, presenter: bool) -> str:
    query = [f"lang={lang}"] + (["present=1"] if presenter else [])
    return f"{base}/{page}{'&' if '?' in page else '?'}{'&'.join(query)}"


def _settled(page) -> None:
    """The script run has finished, the page's title is drawn and so is every chart (they draw after the run)."""
    page.locator("[data-testid=stMain] h1").first.wait_for()
    wait_for_idle(page)
    page.wait_for_function(f"() => !({DRAWING})()")
    page.wait_for_timeout(100)


def _all_in_view(page) -> None:
    """Make the viewport as tall as the page: axe leaves text outside the viewport unchecked for contrast."""
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], min(height, 20_000))})
    page.wait_for_timeout(200)
    page.wait_for_function(f"() => !({DRAWING})()")


def _is_streamlit_own(violation: dict) -> bool:
    return any(rule == violation["rule"] and fragment in violation["html"] for rule, fragment in STREAMLIT_OWN)


@pytest.mark.browser
@pytest.mark.slow
def test_no_serious_accessibility_violation_on_any_page(page, app_url):
    script = open(AXE, encoding="utf-8").read()
    page.set_default_timeout(300_000)  # a page's first visit on a fresh server computes its figures
    found = {}
    for name, lang, presenter in VIEWS:
        page.set_viewport_size(VIEWPORT)
        page.goto(_url(app_url, name, lang, presenter))
        _settled(page)
        _all_in_view(page)
        page.add_script_tag(content=script)
        violations = [v for v in page.evaluate(RUN_AXE, TAGS) if not _is_streamlit_own(v)]
        if violations:
            view = f"/{name} lang={lang}{' presenter' if presenter else ''}"
            found[view] = violations
            screenshot(page, "axe-" + (name.split("?")[0] or "home") + f"-{lang}" + ("-present" if presenter else ""))
    assert not found, "\n".join(
        f"{view}: {v['rule']} ({v['impact']}) on {v['html']!r}: {v['why']}"
        for view, vs in found.items()
        for v in vs[:5]
    )


def test_a_charts_text_alternative_is_its_accessible_name_not_a_caption():
    at = open_app_page("pages/training_race.py")  # the recorded race: its charts draw without computing
    charts = at.get("plotly_chart")
    captions = [c.value for c in at.caption]
    assert charts
    for chart in charts:
        assert chart.proto.alt.startswith("Chart"), chart.proto.alt  # role="figure", aria-label=alt in the browser
        assert chart.proto.alt not in captions
