"""Every page runs inside app.py's router, even when a deep link starts it.

Streamlit treats a folder called ``pages/`` as an old-style (v1) multipage app
until ``st.navigation`` has run in the process (and AppTest resets that on every
run), so a deep link such as ``/gradient_flow`` can start a page without
``app.py`` and its sidebar. Each page starts with :func:`route_through_app`,
which then switches v1 routing off and runs ``app.py`` in place, in the same
script run, so widget events such as a button click are not lost.
"""

from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP = Path(__file__).resolve().parent.parent / "app.py"
# The residual block's "+": the app serves its own favicon (a Material icon would load from fonts.gstatic.com).
FAVICON = Path(__file__).resolve().parent / "favicon.png"


def app_has_page(page: str) -> bool:
    """Whether the app has ``page`` (a path relative to app.py's folder, "pages/loss_landscape.py"): the lesson
    leaves out a step whose page is missing (``resnet_viz.teaching.lesson_steps(app_has_page)``)."""
    return (APP.parent / page).is_file()


def route_through_app() -> None:
    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    exec(compile(APP.read_text(), str(APP), "exec"), {"__name__": "__main__", "__file__": str(APP)})
    st.stop()  # app.py has run this page already
