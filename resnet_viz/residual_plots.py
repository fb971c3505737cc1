"""Plotly figures for the residual-versus-identity probes (see :mod:`resnet_viz.residual`).

Every function takes plain results (lists and dicts) and returns a figure, so
they work with cached results and outside Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .i18n import _
from .models import twin_label
from .style import COLORS, DASH, apply_template, base_layout

IDENTITY_COLOR = COLORS["resnet"]
RESIDUAL_COLOR = "#2ca02c"


def _title_above_legend(fig: go.Figure, height: int = 400) -> go.Figure:
    # base_layout puts a horizontal legend just above the plot; keep the title clear of it.
    fig.update_layout(height=height, margin=dict(t=95), title=dict(y=0.97, yanchor="top", font_size=15))
    return fig


def _block_axis(fig: go.Figure, names: list[str]) -> None:
    """Block index on x, block names on hover, dotted lines between stages."""
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(names))),
        ticktext=[str(i + 1) for i in range(len(names))] if len(names) > 12 else names,
    )
    for i in range(1, len(names)):
        if names[i].split(".")[0] != names[i - 1].split(".")[0]:
            fig.add_vline(x=i - 0.5, line=dict(color="#bbbbbb", dash="dot", width=1))


def _per_block_lines(
    contribs: dict[str, list[dict]], key: str, *, title: str, y: str, reference: float | None, reference_label: str
) -> go.Figure:
    fig = go.Figure()
    names: list[str] = []
    for twin, entries in contribs.items():
        names = [e["name"] for e in entries]
        values = [e[key] for e in entries]
        fig.add_trace(
            go.Scatter(
                x=list(range(len(entries))),
                y=values,
                name=twin_label(twin),
                mode="lines+markers",
                line=dict(color=COLORS[twin], dash=DASH[twin], width=2.5),
                customdata=names,
                hovertemplate="%{customdata}: %{y:.3f}<extra>" + twin_label(twin) + "</extra>",
                connectgaps=False,
            )
        )
    if reference is not None:
        fig.add_hline(
            y=reference,
            line=dict(color="#888888", dash="dot"),
            annotation_text=reference_label,
            annotation_position="top left",
        )
    base_layout(fig, title=title, x=_("block (stages separated by dotted lines)"), y=y)
    _title_above_legend(fig)
    _block_axis(fig, names)
    return fig


def ratio_figure(contribs: dict[str, list[dict]]) -> go.Figure:
    """‖F(x)‖ / ‖x‖ per block for each twin (``{"resnet": entries, "plain": entries}``)."""
    return _per_block_lines(
        contribs,
        "ratio",
        title=_("How big is F(x) next to x?  ‖F(x)‖ / ‖x‖ per block"),
        y="‖F(x)‖ / ‖x‖",
        reference=1.0,
        reference_label=_("F(x) as large as x"),
    )


def cosine_figure(contribs: dict[str, list[dict]]) -> go.Figure:
    """Cosine similarity of F(x) and x per block (gaps where the plain twin changes shape)."""
    fig = _per_block_lines(
        contribs,
        "cosine",
        title=_("Does F(x) point along x?  cosine(F(x), x) per block"),
        y=_("cosine similarity"),
        reference=0.0,
        reference_label=_("orthogonal"),
    )
    fig.update_yaxes(range=[-1.05, 1.05])
    return fig


def _upsample(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.as_tensor(np.asarray(m, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def spatial_maps_figure(
    image: np.ndarray, entries: list[dict], *, title: str, opacity: float = 0.6, cell_px: int = 150
) -> go.Figure:
    """Each block's map of |F(x)| (relative to |x|) drawn over the image.

    ``image`` is H x W x 3 uint8 (shown as the model saw it). One row per
    stage, one column per block; one colour scale for all maps.
    """
    image = np.asarray(image, dtype=np.uint8)
    stages: dict[str, list[dict]] = {}
    for e in entries:
        stages.setdefault(e["name"].split(".")[0], []).append(e)
    rows, cols = len(stages), max(len(v) for v in stages.values())
    maps = [e["spatial_map"] for e in entries]
    zmax = float(np.percentile(np.concatenate([m.ravel() for m in maps]), 99)) or 1.0
    fig = make_subplots(
        rows=rows,
        cols=cols,
        horizontal_spacing=0.01,
        vertical_spacing=0.06,
        subplot_titles=[
            e["name"] if j < len(stage) else ""
            for stage in stages.values()
            for j, e in enumerate(stage + [stage[-1]] * (cols - len(stage)))
        ],
    )
    size = image.shape[:2]
    for r, stage in enumerate(stages.values(), start=1):
        for c, e in enumerate(stage, start=1):
            fig.add_trace(go.Image(z=image, hoverinfo="skip"), row=r, col=c)
            fig.add_trace(
                go.Heatmap(
                    z=_upsample(e["spatial_map"], size),
                    coloraxis="coloraxis",
                    opacity=opacity,
                    hovertemplate=e["name"] + f" ({e['resolution'][0]}x{e['resolution'][1]})"
                    "<br>|F(x)| / mean|x|: %{z:.2f}<extra></extra>",
                ),
                row=r,
                col=c,
            )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for r in range(1, rows + 1):  # square pixels: each y axis keeps its own x axis' scale
        for c in range(1, cols + 1):
            i = (r - 1) * cols + c
            fig.update_yaxes(scaleanchor="x" if i == 1 else f"x{i}", row=r, col=c)
    apply_template(fig)
    fig.update_layout(
        title=title,
        height=max(260, int(rows * cell_px * 1.15) + 80),
        width=None,
        margin=dict(l=10, r=10, t=70, b=10),
        coloraxis=dict(colorscale="Inferno", cmin=0, cmax=zmax, colorbar=dict(title="|F(x)| / mean |x|", thickness=12)),
    )
    fig.update_annotations(font_size=11)
    return fig


def gradient_split_figure(entries: list[dict]) -> go.Figure:
    """Share of the gradient at each block's input through the identity vs through F (a ResNet)."""
    names = [e["name"] for e in entries]
    x = list(range(len(entries)))
    identity = [e["identity_share"] for e in entries]
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=identity,
                name=_("through the identity (skip)"),
                marker_color=IDENTITY_COLOR,
                customdata=names,
                hovertemplate=_("%{customdata}: %{y:.0%} through the identity") + "<extra></extra>",
            ),
            go.Bar(
                x=x,
                y=[1 - v for v in identity],
                name=_("through the residual branch F"),
                marker_color=RESIDUAL_COLOR,
                customdata=names,
                hovertemplate=_("%{customdata}: %{y:.0%} through F") + "<extra></extra>",
            ),
        ]
    )
    fig.update_layout(barmode="stack")
    fig.add_hline(y=0.5, line=dict(color="#888888", dash="dot"))
    base_layout(
        fig,
        title=_("Where the gradient reaching each block's input comes from (ResNet)"),
        x=_("block"),
        y=_("share of ‖dL/dx‖"),
    )
    _title_above_legend(fig)
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    _block_axis(fig, names)
    return fig


def lesion_figure(lesions: dict[str, dict], names: list[str]) -> go.Figure:
    """Accuracy with each single block deleted, both twins side by side, baselines dashed."""
    fig = go.Figure()
    x = list(range(len(names)))
    for twin, result in lesions.items():
        values = result["per_block"]
        fig.add_trace(
            go.Bar(
                x=x,
                y=[v if v is not None else 0 for v in values],
                name=_("{twin}, one block deleted").format(twin=twin_label(twin)),
                marker=dict(color=COLORS[twin], pattern_shape="" if twin == "resnet" else "/"),
                text=["" if v is not None else "n/a" for v in values],
                textposition="outside",
                customdata=names,
                hovertext=[
                    f"{n}: {v:.1%}"
                    if v is not None
                    else _("{block}: cannot be deleted (changes the shape)").format(block=n)
                    for n, v in zip(names, values)
                ],
                hoverinfo="text",
            )
        )
    for twin, result in lesions.items():  # baselines as legend entries: labels on the lines would collide
        fig.add_trace(
            go.Scatter(
                x=[-0.5, len(names) - 0.5],
                y=[result["baseline"]] * 2,
                mode="lines",
                name=_("{twin}, intact: {accuracy:.1%}").format(twin=twin_label(twin), accuracy=result["baseline"]),
                line=dict(color=COLORS[twin], dash="dash", width=1.5),
                hoverinfo="skip",
            )
        )
    base_layout(fig, title=_("Accuracy with one block deleted"), x=_("deleted block"), y=_("test accuracy"))
    # Four legend entries: below the axis, where they have room.
    fig.update_layout(
        barmode="group", height=470, margin=dict(t=60, b=130), legend=dict(orientation="h", yanchor="top", y=-0.28, x=0)
    )
    fig.update_yaxes(range=[0, 1.08], tickformat=".0%")
    _block_axis(fig, names)
    return fig


def random_deletion_figure(
    curves: dict[str, dict], baselines: dict[str, float], *, chance: float | None = None
) -> go.Figure:
    """Accuracy against the number of blocks deleted at random (mean ± std over draws)."""
    fig = go.Figure()
    for twin, curve in curves.items():
        fig.add_trace(
            go.Scatter(
                x=[0, *curve["k"]],
                y=[baselines[twin], *curve["mean"]],
                name=twin_label(twin),
                mode="lines+markers",
                line=dict(color=COLORS[twin], dash=DASH[twin], width=2.5),
                error_y=dict(type="data", array=[0, *curve["std"]], visible=True, thickness=1),
                hovertemplate=_("%{x} deleted: %{y:.1%}") + "<extra>" + twin_label(twin) + "</extra>",
            )
        )
    if chance is not None:
        fig.add_hline(
            y=chance,
            line=dict(color="#888888", dash="dot"),
            annotation_text=_("chance"),
            annotation_position="bottom right",
        )
    base_layout(
        fig,
        title=_("Accuracy against the number of blocks deleted at random"),
        x=_("blocks deleted"),
        y=_("test accuracy"),
    )
    _title_above_legend(fig, 440)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(dtick=1)
    return fig


def path_length_figure(dist: dict) -> go.Figure:
    """The binomial distribution of path lengths in a ResNet unravelled into 2^n paths."""
    n = dist["length"][-1]
    lo, hi = dist["central_95"]
    colors = [COLORS["resnet"] if lo <= k <= hi else "#aec7e8" for k in dist["length"]]
    fig = go.Figure(
        go.Bar(
            x=dist["length"],
            y=dist["fraction"],
            marker_color=colors,
            customdata=dist["count"],
            hovertemplate=_("%{customdata:,} paths through %{x} blocks (%{y:.2%})") + "<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_vline(
        x=n,
        line=dict(color=COLORS["plain"], dash="dash"),
        annotation_text=_("the plain net: one path through all {n}").format(n=n),
        annotation_position="top left",
    )
    base_layout(
        fig,
        title=_("2^{n} = {total:,} paths through {n} blocks: how many blocks each passes").format(
            n=n, total=dist["total"]
        ),
        x=_("path length (residual blocks on the path)"),
        y=_("share of all paths"),
    )
    fig.update_yaxes(tickformat=".0%")
    return fig
