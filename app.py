"""ResNet twins: the router and the shared sidebar.  Run with ``streamlit run app.py``."""

import pandas  # noqa: F401 - imported once here: plotly imports it lazily, and 30 first visitors' threads

# importing it at the same moment see a partially initialised module (AttributeError on pandas.Series)
import streamlit as st

from resnet_viz.i18n import LANGUAGES, _, browser_language, set_language
from ui.models import checkpoint_sidebar, device_label
from ui.routing import FAVICON
from ui.share import run_with_view_link

st.set_page_config(page_title="ResNet twins", page_icon=str(FAVICON), layout="wide")


def choose_language() -> str:
    """The session's language: ``?lang=`` when the URL sets it, else the last choice, else the browser's."""
    state = st.session_state
    asked = st.query_params.get("lang")
    if asked in LANGUAGES and asked != state.get("lang_from_url"):
        state["lang"] = asked  # a link with ?lang= (opened, shared or edited) wins
    elif state.get("lang") not in LANGUAGES:
        try:
            locale = st.context.locale
        except Exception:  # no browser behind this run (tests, bare mode)
            locale = None
        state["lang"] = browser_language(locale)
    state["lang_from_url"] = asked if asked in LANGUAGES else state.get("lang_from_url")
    return state["lang"]


def _language_changed() -> None:
    st.query_params["lang"] = st.session_state["lang"]
    st.session_state["lang_from_url"] = st.session_state["lang"]


def _presenter_changed() -> None:
    if st.session_state["presenter"]:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]


lang = choose_language()
set_language(lang)
if st.query_params.get("lang") != lang:
    st.query_params["lang"] = lang  # only our key: page navigation drops the query string, the language stays
if st.query_params.get("present") == "1" and st.session_state.get("presenter_from_url") != "1":
    st.session_state["presenter"] = True
st.session_state["presenter_from_url"] = st.query_params.get("present")

PAGES = [
    st.Page("pages/home.py", title=_("Home"), icon=":material/home:", default=True),
    st.Page("pages/lesson.py", title=_("Lesson"), icon=":material/school:"),
    st.Page("pages/explain.py", title=_("Explain"), icon=":material/search:"),
    st.Page("pages/gradient_flow.py", title=_("Gradient flow"), icon=":material/trending_down:"),
    st.Page("pages/shattered_gradients.py", title=_("Shattered gradients"), icon=":material/grain:"),
    st.Page("pages/residual_vs_identity.py", title=_("Residual vs identity"), icon=":material/add_circle:"),
    st.Page("pages/inside_a_block.py", title=_("Inside a block"), icon=":material/zoom_in:"),
    st.Page("pages/training_race.py", title=_("Training race"), icon=":material/sports_score:"),
    st.Page("pages/loss_landscape.py", title=_("Loss landscape"), icon=":material/landscape:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.radio(
        _("Language"),
        list(LANGUAGES),
        format_func=LANGUAGES.get,
        key="lang",
        horizontal=True,
        on_change=_language_changed,
    )
    presenting = st.toggle(
        _("Presenter mode"),
        key="presenter",
        on_change=_presenter_changed,
        help=_("Larger text and charts for a projector; hides the controls a class does not need."),
    )
    with st.container(key="sidebar-about"):
        st.caption(_("Running on **{device}**").format(device=device_label()))
        st.caption(
            _(
                "A ResNet next to its *plain twin*: the same network, the same initial weights, "
                "the skip connections removed."
            )
        )
    with st.container(key="sidebar-checkpoint"):
        checkpoint_sidebar()
# Streamlit draws captions in a grey of 3.8:1 contrast, below WCAG AA's 4.5:1; the body colour, slightly faded,
# stays above it in the light and the dark theme.
st.html("<style>[data-testid='stCaptionContainer'] { color: inherit !important; opacity: 0.8; }</style>")
if presenting:  # hidden, not removed: an uploaded model stays loaded
    st.html("""<style>
      html { font-size: 22px; }
      .st-key-sidebar-about, .st-key-sidebar-checkpoint { display: none; }
      [data-testid="stMainBlockContainer"] { max-width: 100%; padding-left: 2.5rem; padding-right: 2.5rem; }
    </style>""")
run_with_view_link(page)  # in presenter mode the sidebar ends with the view's link as a QR code
