"""Widget state that survives a run in which the widget was not drawn.

When a page stops before a widget (``st.stop()``: no image yet, weights to download), Streamlit keeps the
widget's value but the browser draws the widget afresh at its default: the page then computes with a value the
visitor cannot see. Writing the value back through ``st.session_state`` before the widget is created sends it to
the browser again. Widgets handled this way take their default from the session state, not from ``value=``.
"""

import streamlit as st


def keep_values(*keys: str) -> None:
    """Re-send these widgets' values (where the session has them) to the browser with the next draw."""
    for key in keys:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]
