"""No request leaves the server: every page, in English and Chinese, loads everything from the app itself.

A class network may have no internet, and a visitor's browser should tell no one else which page they opened.
The browser records every request the page makes (Playwright's ``request`` event, WebSockets included) and every
resource the document names or has loaded (``<link href>``, ``src``, the Performance API's resource entries: a
headless Chromium does not always fetch a favicon, so its ``<link rel=icon>`` is checked in the document).
Any host but the app's fails the test.
"""

from urllib.parse import urlsplit

import pytest
from conftest import DRAWING, app_pages, screenshot, wait_for_idle

LANGUAGES = ("en", "zh")

NAMED_RESOURCES = """() => [
  ...[...document.querySelectorAll('link[href]')].map(e => e.href),
  ...[...document.querySelectorAll('[src]')].map(e => e.src),
  ...performance.getEntriesByType('resource').map(e => e.name),
]"""


def outside(urls, app_host: str) -> list[str]:
    """The URLs that would reach a host other than the app's (data: and blob: URLs reach nothing)."""
    found = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != app_host:
            found.append(url)
    return sorted(set(found))


def test_outside_tells_the_app_from_the_rest():
    host = "127.0.0.1:8501"
    urls = [
        "http://127.0.0.1:8501/static/x.js",
        "ws://127.0.0.1:8501/_stcore/stream",
        "data:image/png;base64,AAAA",
        "blob:http://127.0.0.1:8501/1",
        "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/hub/default/24px.svg",
        "http://127.0.0.1:9999/other-port",
    ]
    assert outside(urls, host) == sorted(urls[-2:])
    assert len(app_pages()) >= 8 and app_pages()[0] == "" and "lesson" in app_pages()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first visitor of a fresh server: every page computes its figures
def test_no_page_asks_any_host_but_the_app(page, app_url):
    host = urlsplit(app_url).netloc
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda ws: requested.append(ws.url))
    page.set_default_timeout(600_000)  # a first visit on a fresh server computes the page's figures (busy CPU: minutes)
    found = {}
    for name in app_pages():
        for lang in LANGUAGES:
            requested.clear()
            page.goto(f"{app_url}/{name}?lang={lang}")
            page.locator("[data-testid=stMain] h1").first.wait_for()
            wait_for_idle(page)
            page.wait_for_function(f"() => !({DRAWING})()")
            page.wait_for_timeout(300)
            assert any(urlsplit(u).netloc == host for u in requested), "the recorder saw no request at all"
            icons = page.eval_on_selector_all("link[rel~=icon]", "links => links.map(l => l.href)")
            assert icons, f"/{name}: no favicon"
            bad = outside(requested + page.evaluate(NAMED_RESOURCES) + icons, host)
            if bad:
                found[f"/{name}?lang={lang}"] = bad
                screenshot(page, "outside-" + (name or "home") + f"-{lang}")
    assert not found, "\n".join(f"{view}: {', '.join(urls)}" for view, urls in found.items())
