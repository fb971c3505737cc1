"""The lesson walked with the keyboard alone: Tab to a control, Space or arrows to predict, Enter to press.

No mouse event is sent: every action is a key press, and the test only reads the page to know where the focus
is and what it shows.
"""

import re

import pytest
from conftest import wait_for_idle

from resnet_viz.teaching import lesson_steps
from ui.routing import app_has_page

ACTIVE = """() => { const el = document.activeElement; if (!el) return null;
  const style = getComputedStyle(el), label = el.closest('label');
  return {tag: el.tagName, type: el.type || '', text: (el.innerText || el.getAttribute('aria-label') || '').trim(),
          option: label ? label.innerText.trim() : '', checked: !!el.checked, disabled: !!el.disabled,
          ring: style.outlineStyle !== 'none' || style.boxShadow !== 'none'}; }"""
MAX_TABS = 120


def tab_to(page, matches, what: str) -> dict:
    """Press Tab until the focused element ``matches``; fails with what got focus on the way."""
    seen = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        active = page.evaluate(ACTIVE)
        if active and matches(active):
            return active
        seen.append((active or {}).get("text", "")[:30])
    raise AssertionError(f"{what}: never focused within {MAX_TABS} Tabs; focus went through {seen}")


def is_button(text: str):
    """A focused, enabled button labelled ``text`` (its icon's name is a separate line of its text)."""
    return lambda el: el["tag"] == "BUTTON" and text in el["text"].splitlines() and not el["disabled"]


@pytest.mark.browser
@pytest.mark.slow  # every step's figure; cold on a fresh server
def test_the_whole_lesson_can_be_walked_with_the_keyboard_alone(page, app_url):
    steps = lesson_steps(app_has_page)
    page.goto(app_url + "/lesson?step=1&lang=en")
    page.get_by_text(f"Step 1 of {len(steps)}").wait_for()
    wait_for_idle(page)
    for number, step in enumerate(steps, start=1):
        # Predict: Tab into the radio group, Space picks the focused choice, ArrowDown moves on to the next.
        radio = tab_to(
            page,
            lambda el: el["type"] == "radio" and re.match(r"[A-D]\. ", el["option"]),
            f"step {number}'s prediction",
        )  # not the sidebar's language choice
        page.keyboard.press("Space")
        page.keyboard.press("ArrowDown")
        wait_for_idle(page)
        chosen = page.evaluate(ACTIVE)
        assert chosen["checked"] and chosen["option"] != radio["option"], (radio, chosen)
        assert chosen["ring"], f"step {number}: the focused choice shows no focus ring"

        reveal = tab_to(page, is_button("Reveal the answer"), f"step {number}'s Reveal")
        assert reveal["ring"], f"step {number}: the focused Reveal button shows no focus ring"
        page.keyboard.press("Enter")
        answer = page.locator(".st-key-lesson-answer")
        shown = answer.get_by_text(re.compile(r"Answer: [A-D]\.")).first
        shown.wait_for(timeout=180_000)
        wait_for_idle(page)
        letter = re.search(r"Answer: ([A-D])\.", shown.inner_text()).group(1)
        verdict = "Right!" if chosen["option"].startswith(letter + ".") else "Not quite."
        assert verdict in shown.inner_text(), f"step {number}: chose {chosen['option']!r}, shown {shown.inner_text()!r}"

        if number < len(steps):
            tab_to(page, is_button("Next"), f"step {number}'s Next")
            page.keyboard.press("Enter")
            page.get_by_text(f"Step {number + 1} of {len(steps)}").wait_for()
            wait_for_idle(page)
            assert f"step={steps[number].key}" in page.url
    assert page.get_by_role("button", name="Next").is_disabled()  # the last step: nowhere further to go
