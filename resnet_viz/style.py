"""One visual language for every chart: ResNet solid blue, plain twin dashed orange."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

COLORS = {"resnet": "#1f77b4", "plain": "#ff7f0e"}
DASH = {"resnet": "solid", "plain": "dash"}
# One colour per depth in multi-depth charts (training race, depth sweeps): Okabe & Ito's colour-blind-safe set,
# in an order whose neighbours also differ in lightness (blue, orange, bluish green, vermilion, sky blue, purple).
DEPTH_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7"]
TEMPLATE = "plotly_white"


def base_layout(fig: go.Figure, *, title: str, x: str, y: str, log_y: bool = False, height: int = 380) -> go.Figure:
    apply_template(fig)
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        xaxis_title=x,
        yaxis_title=y,
    )
    if log_y:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig


def apply_template(fig: go.Figure, name: str = TEMPLATE) -> None:
    """Give ``fig`` a registered template without validating it again.

    Registered templates are valid already; validating one costs about 20 ms a figure, half of building a
    training-race chart, and the live race rebuilds two of them twice a second. Plotly skips this check the
    same way when it applies its default template. Without the ``_validate`` switch it is just slower.
    """
    layout = fig.layout
    layout._validate = False
    try:
        layout.template = pio.templates[name]
    finally:
        layout._validate = True
