"""The app's pages, routed by ``st.navigation`` in ``app.py``.

Streamlit treats a folder called ``pages/`` as an old-style (v1) multipage app
until ``st.navigation`` has run in the process (and AppTest resets that on every
run), so a deep link such as ``/gradient_flow`` can run a page without
``app.py`` and its sidebar. Each page starts with :func:`route_through_app`,
which switches v1 routing off and reruns through ``app.py``.
"""
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def route_through_app() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
