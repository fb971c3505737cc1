"""Plotly figures for the gradient-flow views (log-scale y, ResNet solid blue, plain twin dashed orange)."""

from __future__ import annotations

import math
from typing import Mapping

import plotly.graph_objects as go

from .gradients import DepthSweep, GradientFlow
from .i18n import _
from .models import TWINS, twin_label
from .style import COLORS, DASH, base_layout


def format_ratio(ratio: float) -> str:
    """A first/last ratio for people: ``3.2e-07``, ``0.41``, ``980``; exact zeros are float32 underflow."""
    if ratio == 0:
        return _("0 (underflow)")
    if math.isnan(ratio) or math.isinf(ratio):
        return _("undefined (last-layer gradient is 0)")
    if 1e-3 <= abs(ratio) < 1e4:
        return f"{ratio:.3g}"
    return f"{ratio:.2e}"


def _layout(fig: go.Figure, **kwargs) -> go.Figure:
    base_layout(fig, **kwargs)
    # Room for a legend whose entries carry the ratios, between the title and the plot.
    fig.update_layout(margin=dict(t=95), title=dict(y=0.97, yanchor="top"), legend=dict(y=1.02))
    return fig


def _positive(values):
    """Log axes cannot show 0: leave a gap there (the value underflowed in float32)."""
    return [v if v > 0 and math.isfinite(v) else None for v in values]


def count_zeros(flows: Mapping[str, GradientFlow]) -> dict[str, int]:
    """How many main-path weights of each twin got a gradient of exactly 0."""
    return {twin: sum(1 for v in flow.grad_norms if v == 0) for twin, flow in flows.items()}


def _twin_lines(flows: Mapping[str, GradientFlow], names: str, values: str, *, label, hover: str) -> go.Figure:
    """One line per twin: ``getattr(flow, values)`` against the index of ``getattr(flow, names)``."""
    fig = go.Figure()
    for twin in TWINS:
        if twin not in flows:
            continue
        flow = flows[twin]
        fig.add_trace(
            go.Scatter(
                x=list(range(len(getattr(flow, names)))),
                y=_positive(getattr(flow, values)),
                customdata=getattr(flow, names),
                mode="lines+markers",
                marker=dict(size=4),
                line=dict(color=COLORS[twin], dash=DASH[twin]),
                name=label(twin, flow),
                hovertemplate="%{customdata}<br>" + hover + "<extra>" + twin_label(twin) + "</extra>",
            )
        )
    return fig


def gradient_norm_figure(flows: Mapping[str, GradientFlow], *, title: str | None = None) -> go.Figure:
    """Per-layer gradient norm of both twins on one chart, input (left) to output (right)."""
    fig = _twin_lines(
        flows,
        "layers",
        "grad_norms",
        hover="‖∂L/∂W‖ = %{y:.3g}",
        label=lambda twin, flow: _("{twin} — first/last ratio {ratio}").format(
            twin=twin_label(twin), ratio=format_ratio(flow.ratio)
        ),
    )
    _layout(
        fig,
        title=title or _("Gradient norm per layer"),
        x=_("layer index (0 = stem convolution … last = final linear layer)"),
        y=_("‖∂loss/∂W‖ (log scale)"),
        log_y=True,
    )
    return fig


def forward_signal_figure(flows: Mapping[str, GradientFlow], *, title: str | None = None) -> go.Figure:
    fig = _twin_lines(flows, "blocks", "signal_std", hover="std = %{y:.3g}", label=lambda twin, flow: twin_label(twin))
    _layout(
        fig,
        title=title or _("Forward signal: standard deviation of each block's output"),
        x=_("block index (0 = stem … last = final block)"),
        y=_("output std (log scale)"),
        log_y=True,
    )
    return fig


def depth_sweep_figure(sweep: DepthSweep, *, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    for twin in TWINS:
        ratios = sweep.ratios[twin]
        fig.add_trace(
            go.Scatter(
                x=sweep.depths,
                y=_positive(ratios),
                mode="lines+markers",
                line=dict(color=COLORS[twin], dash=DASH[twin]),
                name=twin_label(twin),
                text=[format_ratio(r) for r in ratios],
                hovertemplate=_("depth %{x}<br>first/last = %{text}") + "<extra>" + twin_label(twin) + "</extra>",
            )
        )
    fig.add_hline(y=1, line=dict(color="#888", width=1, dash="dot"))
    _layout(
        fig,
        title=title or _("First/last gradient ratio against depth"),
        x=_("depth (layers)"),
        y=_("first/last gradient-norm ratio (log scale)"),
        log_y=True,
    )
    fig.update_xaxes(tickvals=sweep.depths)
    return fig
