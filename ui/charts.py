"""Show a chart with its text alternative; a figure shared by every session is serialised once.

:func:`show_chart` draws a plotly figure whose accessible name is the sentence :mod:`resnet_viz.chart_text` writes
from the figure's numbers (Streamlit's ``alt``: ``role="figure"`` with that ``aria-label``): a screen reader reads
it, the screen shows only the chart.
:func:`share` marks a figure that a server-wide cache hands to every session (the Lesson's reveals): its dict and
its text are computed once, and each session's run only encodes that dict, instead of copying and checking the
figure again. A shared figure is never changed; presenter mode draws an enlarged copy.
"""

from __future__ import annotations

import copy

import plotly.graph_objects as go
import streamlit as st
from plotly.basedatatypes import BaseFigure

from resnet_viz.chart_text import describe
from ui.presenter import for_projector, presenting

CONFIG = {"displaylogo": False}


class _Serialised(BaseFigure):
    """A figure that is already its dict: Streamlit asks ``to_dict()`` and gets it without a deep copy.

    Streamlit only checks that it is a plotly figure and calls ``to_dict()``; building a real ``go.Figure`` (its
    template alone) would cost more than the rest of the chart's run.
    """

    def __init__(self, spec: dict):  # noqa: D107 - no BaseFigure.__init__: nothing else is read
        object.__setattr__(self, "_spec", spec)

    def to_dict(self):
        return self._spec


def share(fig: go.Figure) -> go.Figure:
    """Serialise ``fig`` once and remember its text; from then on it must not change (it is shared)."""
    fig._shared_spec = fig.to_dict()
    fig._chart_text = describe(fig)
    return fig


def chart_text(fig) -> str:
    """The figure's text alternative, written once per figure (a page may keep a figure between reruns)."""
    text = getattr(fig, "_chart_text", None)
    if text is None:
        text = fig._chart_text = describe(fig)
    return text


def _presenter_spec(fig) -> dict:
    """A shared figure's enlarged dict for presenter mode, made once (the shared figure itself stays)."""
    spec = getattr(fig, "_presenter_spec", None)
    if spec is None:
        spec = fig._presenter_spec = for_projector(go.Figure(copy.deepcopy(fig._shared_spec))).to_dict()
    return spec


def show_chart(fig, *, where=None, alt: str | None = None, config: dict | None = None, **kwargs) -> None:
    """Draw ``fig`` (``st.plotly_chart`` arguments pass through) with its text alternative as its accessible name."""
    where = where or st
    text = alt or chart_text(fig)
    if getattr(fig, "_shared_spec", None) is not None:
        fig = _Serialised(_presenter_spec(fig) if presenting() else fig._shared_spec)
    else:
        fig = for_projector(fig)
    kwargs.setdefault("width", "stretch")
    where.plotly_chart(fig, config=config or CONFIG, alt=text, **kwargs)
