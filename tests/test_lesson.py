"""The Lesson page: every step asks, reveals a live figure, links to its page; ?step=key; the handout."""

import dataclasses
import json
import os
import re

import pytest
from conftest import screenshot, wait_for_idle
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz import race as rr
from resnet_viz.i18n import _, language
from resnet_viz.teaching import STEPS, Choice, Step, compare, handout_html, lesson_steps
from resnet_viz.teaching.markdown import markdown_html
from ui.routing import app_has_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")
PAGE = "pages/lesson.py"
STEP_KEYS = [s.key for s in lesson_steps(app_has_page)]  # the steps the app shows
# What each reveal draws: plotly charts and pictures.
EXPECTED = {
    "block": (0, 0),
    "vanishing": (1, 0),
    "exploding": (2, 0),
    "shattered": (1, 0),
    "race": (1, 0),
    "lesion": (3, 0),
    "landscape": (1, 0),
    "gradcam": (0, 2),
    "summary": (1, 0),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def open_lesson(step: int | str | None = None, lang: str = "en") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = lang
    at.run()
    at.switch_page(PAGE)
    at.query_params["lang"] = lang
    if step is not None:
        at.query_params["step"] = str(step)
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_loss_landscape_step_waits_for_its_page():
    assert "landscape" not in [s.key for s in lesson_steps(lambda page: False)]
    assert "landscape" in [s.key for s in lesson_steps(lambda page: True)]
    assert STEP_KEYS == [s.key for s in lesson_steps(lambda page: os.path.isfile(os.path.join(ROOT, page)))]
    # The library knows no app: without a predicate (an installed wheel has no pages/) it gives every step.
    assert [s.key for s in lesson_steps()] == [s.key for s in STEPS]
    assert not app_has_page("pages/no_such_page.py")
    assert 7 <= len(STEP_KEYS) <= 9


def test_markdown_marks_up_bold_italic_and_code_and_escapes_the_rest():
    assert markdown_html("**Say:** point at `out + x` and the *addition* <here> & there") == (
        "<strong>Say:</strong> point at <code>out + x</code> and the <em>addition</em> &lt;here&gt; &amp; there"
    )
    assert markdown_html("`x*y*z < 1`") == "<code>x*y*z &lt; 1</code>"  # a code span is shown as written
    assert markdown_html("对输入的*修正*，") == "对输入的<em>修正</em>，"  # emphasis inside a word (Chinese)
    assert markdown_html("2 * 3 * 4, a ** b") == "2 * 3 * 4, a ** b"  # a star with a space after is not emphasis


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_handout_text_leaves_no_markdown_behind(lang):
    """The converter knows every mark the lesson's texts use: no star, backtick, link or list item is left."""
    with language(lang):
        texts = [_(text) for s in STEPS for text in (s.question, *(c.text for c in s.choices), s.explanation)]
    assert any("<em>" in markdown_html(text) for text in texts)
    for text in texts:
        shown = re.sub(r"<code>.*?</code>", "", markdown_html(text))
        assert not re.search(r"[*`]|\]\(|^\s*([-+]|\d+\.)\s", shown, re.MULTILINE), text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_step_asks_then_reveals_its_figure(lang):
    at = open_lesson(1, lang)
    for number, key in enumerate(STEP_KEYS, start=1):
        step = next(s for s in STEPS if s.key == key)
        with language(lang):
            title, question = _(step.title), _(step.question)
        assert at.header[0].value == title
        assert any(question in md.value for md in at.markdown)
        assert at.radio(key=f"lesson_choice_{key}").value is None
        assert not at.get("plotly_chart") and not at.get("image")
        with language(lang):  # AppTest formats the radio's options in the test's thread
            at.radio(key=f"lesson_choice_{key}").set_value(step.choices[0].id)
            at.button(key=f"lesson_reveal_{key}").click().run()
        assert not at.exception, (key, at.exception)
        assert not at.error, (key, [e.value for e in at.error])
        charts, pictures = EXPECTED[key]
        assert len(at.get("plotly_chart")) == charts, key
        assert len(at.get("image")) == pictures, key
        verdicts = [e.value for e in (*at.success, *at.warning)]
        assert len(verdicts) == 1 and re.search(r"[A-D]\. ", verdicts[0]), (key, verdicts)
        letter = re.search(r"([A-D])\. ", verdicts[0]).group(1)
        with language(lang):
            named = _(step.choices[ord(letter) - ord("A")].text)
        assert f"{letter}. {named}" in verdicts[0], (key, verdicts)  # the letter shown is the choice named
        assert (len(at.success) == 1) == (letter == "A"), (key, verdicts)  # "Right!" exactly when A was predicted
        assert at.query_params["step"] == key
        if number < len(STEP_KEYS):
            with language(lang):
                at.button(key="lesson_next").click().run()
    assert at.button(key="lesson_next").disabled
    with language(lang):
        at.button(key="lesson_previous").click().run()
    assert at.query_params["step"] == STEP_KEYS[-2]
    assert at.query_params["lang"] == lang  # the lesson writes only its own key


def test_the_race_answer_comes_from_the_recorded_data():
    race = rv.recorded_race()
    loss = {(r["arch"], r["depth"]): rr.final_train_loss(r) for r in race["runs"]}
    depths = sorted({d for _a, d in loss})
    deep_loss = compare(loss[("plain", depths[-1])], loss[("plain", depths[0])])
    expected = {"lower": "better", "same": "same", "higher": "worse"}[deep_loss]
    number = STEP_KEYS.index("race") + 1
    at = open_lesson(number)
    at.button(key="lesson_reveal_race").click().run()
    step = next(s for s in STEPS if s.key == "race")
    assert any(step.choice(expected).text in i.value for i in at.info)
    assert any(f"{loss[('plain', depths[-1])]:.3f}" in md.value for md in at.markdown)


@pytest.mark.parametrize("raw", ["abc", "0", "99"])
def test_a_bad_step_in_the_url_says_so(raw):
    at = open_lesson(raw)
    assert at.warning and f"step={raw}" in at.warning[0].value
    assert at.query_params["step"] == STEP_KEYS[0]


def test_the_lesson_guide_lists_every_step_key_a_link_can_use():
    with open(os.path.join(ROOT, "docs", "lesson.md"), encoding="utf-8") as f:
        guide = f.read()
    listed = re.search(r"Keys: (.*?)\.", guide, re.DOTALL).group(1)
    assert re.findall(r"`(\w+)`", listed) == [s.key for s in STEPS]


def test_a_step_opens_by_its_key_and_an_old_link_by_its_number():
    at = open_lesson("race")
    assert not at.warning and at.header[0].value == next(s.title for s in STEPS if s.key == "race")
    number = STEP_KEYS.index("gradcam") + 1
    at = open_lesson(number)
    assert not at.warning and at.header[0].value == next(s.title for s in STEPS if s.key == "gradcam")
    assert at.query_params["step"] == "gradcam"  # the URL shows the key from then on


@pytest.fixture(scope="module")
def reveals(one_thread):
    """Every step's reveal, computed once (in Chinese) for the handout tests."""
    from ui.lesson_reveals import all_reveals  # noqa: PLC0415 - needs Streamlit's caches, like the page

    with language("zh"):
        return all_reveals(lesson_steps())


def test_the_handout_has_every_question_answer_and_figure(reveals):
    steps = lesson_steps()
    with language("zh"):
        html = handout_html(steps, reveals, lang="zh")
        for step in steps:
            assert _(step.question) in html
    assert html.count('class="right"') == len(steps)  # every step marks its answer
    assert html.count("<figure>") == 2 and html.count("plotly-graph-div") >= 7
    with language("zh"):  # the lesion step's evidence split, as the Inside a block page draws it
        title = _("How much of the class evidence travels along the skip, block by block")
    assert json.dumps(title)[1:-1] in html  # inside the figure's JSON, written with \\u escapes
    assert html.count("<script") >= 1 and not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js inline: offline


def test_the_lesion_step_states_the_measured_evidence_split(reveals):
    images = rv.make_shapes(64, seed=2)[0]
    shares = {
        n: rv.evidence_split(rv.load_bundled(n)[0], images).overall_median_share() for n in ("shapes-20", "shapes-56")
    }
    fact = reveals["lesion"].facts[1]
    assert f"{shares['shapes-56']:.0%}" in fact and f"{shares['shapes-20']:.0%}" in fact
    assert fact.index(f"{shares['shapes-56']:.0%}") < fact.index(f"{shares['shapes-20']:.0%}")  # 56 first, as worded


def _rotated(step: Step, by: int) -> Step:
    return dataclasses.replace(step, choices=step.choices[by:] + step.choices[:by])


def test_reordering_a_steps_choices_keeps_its_answer(reveals):
    """A reveal names the right choice, not its position: however the choices are ordered, the same text is right."""
    for step in lesson_steps():
        reveal = reveals[step.key]
        assert reveal is not None, step.key
        if step.answer is not None:
            assert reveal.answer == step.answer, step.key  # the data agrees with the answer the step states
        right = step.choice(reveal.answer).text
        without_figures = dataclasses.replace(reveal, figures=[], images=[])
        for by in range(1, len(step.choices)):  # every rotation moves every choice to another letter
            reordered = _rotated(step, by)
            html = handout_html([reordered], {step.key: without_figures}, lang="en")
            assert re.findall(r'<li class="right">(.*?)</li>', html) == [markdown_html(right)], (step.key, by)
            letter = reordered.letter(reveal.answer)
            assert f"</strong> {letter}. {markdown_html(right)}<br>" in html, (step.key, by)


def test_without_its_reveal_a_step_keeps_its_question_and_stated_answer():
    steps = lesson_steps()
    html = handout_html(steps, {}, lang="en")
    assert html.count("<section>") == html.count("</section>") == len(steps)
    assert html.count("could not be computed") == len(steps)
    stated = [s for s in steps if s.answer is not None]
    assert stated and re.findall(r'<li class="right">(.*?)</li>', html) == [
        markdown_html(s.choice(s.answer).text) for s in stated
    ]


def test_compare_names_the_outcome_within_its_tolerance():
    assert [compare(v, 1.0) for v in (1.06, 1.04, 0.96, 0.94)] == ["higher", "same", "same", "lower"]
    assert compare(1.2, 1.0, tolerance=0.25) == "same"


def test_a_step_answers_with_one_of_its_own_choices():
    choices = (Choice("a", "A text"), Choice("b", "B text"))
    step = Step(key="k", title="t", question="q", choices=choices, answer="b", explanation="e", notes="n")
    assert step.letter("b") == "B" and step.choice("b").text == "B text"
    with pytest.raises(KeyError):
        step.choice(1)
    with pytest.raises(ValueError, match="none of its choices"):
        dataclasses.replace(step, answer="c")
    with pytest.raises(ValueError, match="share an id"):
        dataclasses.replace(step, choices=(choices[0], choices[0]), answer=None)


@pytest.mark.browser
def test_lesson_in_a_browser(page, app_url, tmp_path):
    """Chinese, reveal with a figure, Next/Previous, a step's URL in a fresh tab, presenter mode, the handout."""
    page.goto(app_url + "/lesson?lang=zh&step=2")
    page.get_by_role("heading", name="梯度消失").wait_for()
    page.get_by_role("button", name="揭晓答案").click()
    page.locator("[data-testid=stMain] .js-plotly-plot").first.wait_for()
    assert page.get_by_text("首层/末层梯度比值").first.is_visible()
    page.get_by_role("button", name="下一步").click()
    page.get_by_role("heading", name="梯度爆炸，以及普通网络为什么仍然退化").wait_for()
    page.wait_for_function("location.search.includes('step=exploding')")
    page.get_by_role("button", name="上一步").click()
    page.get_by_role("heading", name="梯度消失").wait_for()
    screenshot(page, "lesson-zh")

    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    fresh.goto(app_url + "/lesson?step=race&lang=en")
    fresh.get_by_role("heading", name="The degradation problem: a training race").wait_for()
    fresh.get_by_role("button", name="Reveal the answer").click()
    fresh.locator("[data-testid=stMain] .js-plotly-plot").first.wait_for()
    fresh.get_by_text("Presenter mode").click()
    fresh.wait_for_function("getComputedStyle(document.documentElement).fontSize === '22px'")
    assert not fresh.get_by_text("Your own model").is_visible()
    screenshot(fresh, "lesson-presenter")
    wait_for_idle(fresh)  # the handout's file belongs to the finished run; a rerun's click would ask for a stale one
    with fresh.expect_download(timeout=120_000) as download:
        fresh.get_by_role("button", name="Download the handout").click()
    path = tmp_path / "handout.html"
    download.value.save_as(path)
    text = path.read_text()
    assert "Will the 56-layer plain net" in text and "plotly-graph-div" in text
    fresh.context.close()
