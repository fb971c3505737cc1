"""Plotly figures for shattered gradients: the gradient along a line, its autocorrelation, the depth sweep."""

from __future__ import annotations

import math
from typing import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .i18n import _
from .shattered import LineGradients, ShatterSweep, predicted_curves
from .style import COLORS, DASH, apply_template, base_layout

SHALLOW_COLOR = "#2ca02c"


def _color(key: str) -> str:
    return COLORS.get(key, SHALLOW_COLOR)


def _dash(key: str) -> str:
    return DASH.get(key, "dot")


def line_gradient_figure(lines: Mapping[str, LineGradients], labels: Mapping[str, str], *, title: str) -> go.Figure:
    """df/dt along the line, one panel per network (each on its own scale: the shape is what matters)."""
    keys = list(lines)
    fig = make_subplots(
        rows=len(keys),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[
            _("{name}: lag-1 autocorrelation {r:.2f}").format(name=labels[k], r=lines[k].lag1) for k in keys
        ],
    )
    for row, key in enumerate(keys, start=1):
        line = lines[key]
        fig.add_trace(
            go.Scatter(
                x=line.t,
                y=line.directional,
                mode="lines",
                name=labels[key],
                line=dict(color=_color(key), width=1.5),
                showlegend=False,
                hovertemplate="t = %{x:.3f}<br>df/dt = %{y:.3g}<extra>" + labels[key] + "</extra>",
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(title_text="df/dt", row=row, col=1, title_standoff=4)
    apply_template(fig)
    fig.update_layout(title=title, height=140 + 150 * len(keys), margin=dict(l=60, r=20, t=80, b=50))
    fig.update_xaxes(title_text=_("position t along the line"), row=len(keys), col=1)
    return fig


def autocorrelation_figure(
    lines: Mapping[str, LineGradients], labels: Mapping[str, str], *, title: str, max_lag: int = 20
) -> go.Figure:
    """Autocorrelation of df/dt against the lag, with the band where white noise falls (±2/√n)."""
    fig = go.Figure()
    n = min(len(line.directional) for line in lines.values())
    max_lag = min(max_lag, n - 1)
    band = 2 / math.sqrt(n)
    fig.add_trace(
        go.Scatter(
            x=[0, max_lag, max_lag, 0],
            y=[band, band, -band, -band],
            fill="toself",
            mode="lines",
            fillcolor="rgba(128,128,128,0.15)",
            line=dict(width=0),
            hoverinfo="skip",
            name=_("white noise (±2/√n)"),
        )
    )
    for key, line in lines.items():
        fig.add_trace(
            go.Scatter(
                x=list(range(max_lag + 1)),
                y=line.autocorrelation(max_lag),
                mode="lines+markers",
                marker=dict(size=5),
                line=dict(color=_color(key), dash=_dash(key)),
                name=labels[key],
                hovertemplate=_("lag") + " %{x}: %{y:.3f}<extra>" + labels[key] + "</extra>",
            )
        )
    base_layout(fig, title=title, x=_("lag (points along the line)"), y=_("autocorrelation of df/dt"))
    fig.update_yaxes(range=[-0.5, 1.05])
    return fig


def sweep_figure(sweep: ShatterSweep, labels: Mapping[str, str], *, title: str, points: int) -> go.Figure:
    """The summary number against depth on log–log axes, with the paper's predicted shapes through the first depth.

    Values at or below 0 cannot sit on a log axis: they are left out (a gap), and the white-noise level
    2/√n is drawn as a grey line.
    """
    fig = go.Figure()
    anchor = {twin: values[0] for twin, values in sweep.lag1.items()}
    predicted = predicted_curves(sweep.depths, anchor) if all(v > 0 for v in anchor.values()) else {}
    names = {"plain": _("paper: ∝ 2^-L"), "resnet": _("paper: ∝ 1/√L")}
    for twin, values in sweep.lag1.items():
        fig.add_trace(
            go.Scatter(
                x=sweep.depths,
                y=[v if v > 0 else None for v in values],
                mode="lines+markers",
                line=dict(color=_color(twin), dash=_dash(twin)),
                marker=dict(size=7),
                name=labels[twin],
                customdata=values,
                hovertemplate=_("depth") + " %{x}: %{customdata:.3f}<extra>" + labels[twin] + "</extra>",
            )
        )
        if twin in predicted:
            fig.add_trace(
                go.Scatter(
                    x=sweep.depths,
                    y=predicted[twin],
                    mode="lines",
                    name=names[twin],
                    line=dict(color=_color(twin), dash="dot", width=1),
                    hoverinfo="skip",
                )
            )
    noise = 2 / math.sqrt(points)
    fig.add_trace(
        go.Scatter(
            x=[sweep.depths[0], sweep.depths[-1]],
            y=[noise, noise],
            mode="lines",
            line=dict(color="grey", width=1),
            name=_("white-noise level 2/√n"),
            hoverinfo="skip",
        )
    )
    base_layout(fig, title=title, x=_("depth L (layers)"), y=_("lag-1 autocorrelation of df/dt"), log_y=True)
    fig.update_xaxes(type="log")
    low = max(min([v for values in sweep.lag1.values() for v in values if v > 0] + [noise]) / 2, 1e-3)
    fig.update_yaxes(range=[math.log10(low), math.log10(1.1)])
    return fig
