"""The large QR code of presenter mode reads from the back of a classroom; the sidebar's only from the front rows.

The browser draws the view's link on a 1920 x 1080 projector image; :mod:`qr_camera` turns the code, at the size the
browser drew it, into what a phone's camera preview sees on a projection 2.5 m wide, and OpenCV reads it.
"""

import base64
import re

import pytest
from conftest import wait_for_idle
from qr_camera import code_width_m, farthest_read, reads
from test_accessibility import AXE, RUN_AXE, TAGS

BACK_OF_CLASS_M = 8.0  # eight rows of desks


def _drawn(page, selector: str) -> tuple[bytes, float]:
    """The PNG an <img> shows and the width it is drawn at, in CSS pixels."""
    image = page.locator(selector)
    image.wait_for()
    source = image.get_attribute("src")
    png = base64.b64decode(re.match(r"data:image/png;base64,(.+)", source).group(1))
    return png, image.bounding_box()["width"]


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_large_code_reads_from_the_back_of_a_classroom(browser, app_url, lang):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        page.goto(f"{app_url}/lesson?present=1&lang={lang}")
        wait_for_idle(page)
        caption = page.locator(".st-key-sidebar-link [data-testid=stCaptionContainer]").inner_text()
        link = caption.split(": ", 1)[1] if ": " in caption else caption.split("：", 1)[1]
        assert link.startswith(app_url) and "present" not in link
        # The test server listens on 127.0.0.1 only, so the link names this computer: the sidebar says so.
        warning = page.locator(".st-key-sidebar-link [data-testid=stAlert]").inner_text()
        assert ("Network URL" in warning) and ("Students" in warning or "学生" in warning)
        small_png, small_px = _drawn(page, ".st-key-sidebar-link img")
        page.locator(".st-key-view-link-large-button button").click()
        large_png, large_px = _drawn(page, "[role=dialog] img")
        assert page.locator("[role=dialog]").inner_text().count(link) == 1  # the link in print, for typing
        page.add_script_tag(content=open(AXE, encoding="utf-8").read())
        assert page.evaluate(RUN_AXE, TAGS) == []  # the sidebar's warning, its button and the dialog included
        far = code_width_m(large_px)
        assert all(reads(large_png, far, BACK_OF_CLASS_M, seed) == link for seed in range(3))
        # The sidebar's code (the same link) does not: the button is what makes the back rows scan.
        assert reads(small_png, code_width_m(small_px), BACK_OF_CLASS_M) == ""
        assert farthest_read(small_png, code_width_m(small_px), link) < BACK_OF_CLASS_M / 2
        page.keyboard.press("Escape")
        page.locator("[role=dialog]").wait_for(state="detached")
        wait_for_idle(page)
        assert page.locator("[role=dialog]").count() == 0  # closed, and a rerun does not open it again
    finally:
        context.close()
