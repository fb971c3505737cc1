"""The app's pages, routed by ``st.navigation`` in ``app.py``.

Streamlit treats a folder called ``pages/`` as an old-style (v1) multipage app
until the first ``st.navigation`` call in the process, so the very first
request after a server start, if it is a deep link such as ``/gradient-flow``,
would bypass ``app.py``. Every page imports this package, so the first such
run switches v1 routing off and reruns through ``app.py``.
"""
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()
