"""Lesson: residual learning in a few steps a teacher can project. Predict, then reveal.

The step is in the URL (``?step=race``; a number, ``?step=4``, opens that step too), so any step can be
bookmarked or shared. Figures come from the same library calls, presets and caches as the full pages (see
``ui/lesson_reveals.py``); texts from ``resnet_viz.teaching``.
"""

from __future__ import annotations

import logging

import streamlit as st

from resnet_viz.i18n import _, get_language, language
from resnet_viz.teaching import (
    BLOCK_CODE,
    FURTHER_READING,
    handout_html,
    lesson_steps,
    plain_block_dot,
    residual_block_dot,
)
from ui.charts import show_chart
from ui.lesson_reveals import all_reveals, reveal
from ui.routing import app_has_page, route_through_app
from ui.url_state import Choice, UrlState

route_through_app()

# Streamlit's code colours fall below WCAG AA's 4.5:1 (keywords 3.8:1, strings 2.96:1 in the light theme). Each
# token keeps a hue, mixed into the code's own text colour, which has the contrast in the light and the dark theme
# alike; keywords are bold and strings italic as well, so the kinds differ by more than colour.
CODE_COLOURS = """<style>
  .st-key-lesson-code code .token { color: inherit !important; }
  .st-key-lesson-code code .token.keyword, .st-key-lesson-code code .token.builtin,
  .st-key-lesson-code code .token.boolean { color: color-mix(in srgb, currentColor 65%, #1f77b4) !important;
                                            font-weight: 600; }
  .st-key-lesson-code code .token.string, .st-key-lesson-code code .token.triple-quoted-string {
    color: color-mix(in srgb, currentColor 65%, #2ca02c) !important; font-style: italic; }
  .st-key-lesson-code code .token.function, .st-key-lesson-code code .token.class-name {
    color: color-mix(in srgb, currentColor 65%, #9467bd) !important; }
  .st-key-lesson-code code .token.number { color: color-mix(in srgb, currentColor 65%, #d62728) !important; }
  .st-key-lesson-code code .token.comment { font-style: italic; }
</style>"""

state = st.session_state
steps = lesson_steps(app_has_page)
count = len(steps)


keys = [s.key for s in steps]
# The step's key is in the URL (?step=race): a link stays right when a step is added; a number still opens a step.
URL = UrlState(
    "lesson",
    [Choice("step", keys, keys[0], key="lesson_step", aliases={str(n): key for n, key in enumerate(keys, start=1)})],
)


def _go(number: int) -> None:
    state["lesson_step"] = keys[number - 1]  # the URL follows when the page runs (URL.write)


def _reveal(key: str) -> None:
    state.setdefault("lesson_revealed", set()).add(key)


def _hide(key: str) -> None:
    state.setdefault("lesson_revealed", set()).discard(key)


URL.read()
URL.write()
number = keys.index(state["lesson_step"]) + 1
step = steps[number - 1]

st.title(_("Lesson: why residual networks work"))
st.progress(number / count, text=_("Step {n} of {total}").format(n=number, total=count))
st.header(_(step.title))

if step.key == "block":
    left, right = st.columns(2)
    with left:
        st.caption(_("Residual block"))
        st.graphviz_chart(residual_block_dot())
    with right:
        st.caption(_("Plain block (the twin)"))
        st.graphviz_chart(plain_block_dot())
    with st.container(key="lesson-code"):
        st.code(BLOCK_CODE, language="python", wrap_lines=True)  # no scrolled region (presenter mode's font)
        st.html(CODE_COLOURS)

with st.container(border=True, key="lesson-question"):
    st.markdown("#### " + _("Predict: {question}").format(question=_(step.question)))
    predicted = st.radio(
        _("Your prediction"),
        [c.id for c in step.choices],
        index=None,
        key=f"lesson_choice_{step.key}",
        format_func=lambda choice_id: f"{step.letter(choice_id)}. {_(step.choice(choice_id).text)}",
    )

revealed = step.key in state.get("lesson_revealed", set())
if not revealed:
    st.button(
        _("Reveal the answer"),
        type="primary",
        icon=":material/visibility:",
        on_click=_reveal,
        args=(step.key,),
        key=f"lesson_reveal_{step.key}",
    )
else:
    with st.spinner(_("Computing the figure (shared with the full page; cached for the whole class)…")):
        try:
            result = reveal(step.key)
        except Exception:  # noqa: BLE001 - the class sees a message, the log keeps the traceback
            logging.getLogger("resnet_twins").exception("lesson step %s failed", step.key)
            result = None
    if result is None:
        st.error(
            _(
                "This step's figure could not be computed on this server. The question and explanation still "
                "stand; the full page may say more."
            )
        )
        answer = step.answer
    else:
        answer = result.answer
    with st.container(key="lesson-answer"):
        if answer is not None:
            text = _("Answer: {letter}. {choice}").format(
                letter=step.letter(answer), choice=_(step.choice(answer).text)
            )
            if predicted is None:
                st.info(text, icon=":material/lightbulb:")
            elif predicted == answer:
                st.success(_("Right! {answer}").format(answer=text), icon=":material/check_circle:")
            else:
                st.warning(_("Not quite. {answer}").format(answer=text), icon=":material/info:")
        st.markdown(_(step.explanation))
        for fact in result.facts if result else []:
            st.markdown(fact)
        if result is not None:
            if result.note:
                st.caption(result.note)
            for i, fig in enumerate(result.figures):
                show_chart(fig, key=f"lesson_fig_{step.key}_{i}")
            if result.images:
                for column, (image, caption) in zip(st.columns(len(result.images)), result.images):
                    column.image(image, caption=caption, width="stretch", output_format="PNG", alt=caption)
        if step.key == "summary":
            st.markdown("**" + _("Further reading") + "**\n\n" + "\n".join(f"- {ref}" for ref in FURTHER_READING))
    link_row = st.columns([2, 2, 3])
    if step.page:
        link_row[0].page_link(
            step.page,
            label=_("Open the full page at this view"),
            icon=":material/open_in_new:",
            query_params={**{k: str(v) for k, v in step.params.items()}, "lang": get_language()},
        )
    if step.key == "race":
        link_row[1].page_link(
            "pages/training_race.py",
            label=_("Start a live race"),
            icon=":material/play_arrow:",
            query_params={"lang": get_language()},
        )
    link_row[2].button(
        _("Hide the answer"), on_click=_hide, args=(step.key,), key=f"lesson_hide_{step.key}", type="tertiary"
    )

with st.expander(_("Teacher notes"), expanded=False):
    st.markdown(_(step.notes))

previous, middle, following = st.columns([1, 3, 1])
previous.button(
    _("Previous"),
    icon=":material/arrow_back:",
    disabled=number == 1,
    on_click=_go,
    args=(number - 1,),
    key="lesson_previous",
    width="stretch",
)
following.button(
    _("Next"),
    icon=":material/arrow_forward:",
    icon_position="right",
    disabled=number == count,
    on_click=_go,
    args=(number + 1,),
    key="lesson_next",
    width="stretch",
    type="primary",
)
with middle:
    st.pills(
        _("Go to step"),
        list(range(1, count + 1)),
        selection_mode="single",
        default=None,
        key=f"lesson_jump_{number}",
        on_change=lambda: _go(state[f"lesson_jump_{number}"] or number),
        label_visibility="collapsed",
    )

lang = get_language()


def _handout() -> str:
    # Runs outside the script run when the button is clicked: the language is passed in, not inherited.
    with language(lang):
        return handout_html(steps, all_reveals(steps), lang=lang)


st.divider()
st.download_button(
    _("Download the handout (HTML: questions, answers and figures)"),
    _handout,
    file_name=f"resnet-lesson-{lang}.html",
    mime="text/html",
    icon=":material/download:",
    key="lesson_handout",
    on_click="ignore",
    help=_(
        "One self-contained file that opens offline in any browser and prints well; the charts "
        "stay interactive. Computing every step may take a few seconds."
    ),
)
