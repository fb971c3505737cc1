"""Presenter mode: larger text and charts for a projector (the switch is in app.py's sidebar)."""

import streamlit as st


def presenting() -> bool:
    """True in presenter mode."""
    return bool(st.session_state.get("presenter"))


def for_projector(fig):
    """Larger text and a taller chart in presenter mode; the figure unchanged otherwise.

    Enlarges a figure once: one that a page keeps between reruns (the live race) is not enlarged again.
    """
    if presenting() and not getattr(fig, "_for_projector", False):
        height = fig.layout.height or 450
        fig.update_layout(font=dict(size=20), height=int(height * 1.35), title_font_size=26)
        fig._for_projector = True
    return fig
