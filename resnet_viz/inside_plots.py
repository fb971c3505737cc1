"""Plotly figures for looking inside a block (see :mod:`resnet_viz.inside`): feature maps as small multiples,
the evidence split per block, and the identity share of evidence across depths.

Every function takes plain results and returns a figure, so they work with cached results and outside Streamlit.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from .i18n import _
from .inside import EvidenceSplit, channel_energy
from .models import twin_label
from .residual_plots import IDENTITY_COLOR, RESIDUAL_COLOR, _block_axis, _title_above_legend
from .style import DEPTH_PALETTE, base_layout

GAP = 1  # NaN pixels between two tiles of a mosaic
PLOT_WIDTH = 430  # screen pixels a channel grid is drawn across in a half-width column, about
LABEL_PX = 13  # screen pixels a tile's label needs above it


def channels_by_energy(t: torch.Tensor) -> list[int]:
    """Channel indices of an N x C x H x W tensor, highest energy first (ties: lower index first)."""
    energy = channel_energy(t).numpy()
    return [int(c) for c in np.argsort(-energy, kind="stable")]


def _mosaic(maps: np.ndarray, cols: int, row_gap: int = GAP) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tile k maps of h x w into one array, ``cols`` per row, NaN between tiles (``row_gap`` rows between two rows
    of tiles, room for their labels); returns it and each tile's top-left corner."""
    k, h, w = maps.shape
    rows = -(-k // cols)
    out = np.full((rows * (h + row_gap), cols * (w + GAP) - GAP), np.nan, dtype=np.float32)
    origins = []
    for i in range(k):
        r, c = divmod(i, cols)
        top, left = row_gap + r * (h + row_gap), c * (w + GAP)
        out[top : top + h, left : left + w] = maps[i]
        origins.append((top, left))
    return out, origins


def channel_grid_figure(
    t: torch.Tensor,
    *,
    title: str,
    channels: Sequence[int] | None = None,
    n: int = 16,
    cols: int = 8,
    image: int = 0,
    height: int | None = None,
) -> go.Figure:
    """Small multiples of one image's channels of ``t`` (N x C x H x W), highest energy first.

    ``channels`` fixes which channels to show and in which order (default: the ``n`` of highest energy). A tensor
    with negative values gets a diverging scale centred on 0; a non-negative one (after a ReLU) a sequential
    scale from 0. Each tile is labelled with its channel number.
    """
    order = list(channels) if channels is not None else channels_by_energy(t[image : image + 1])[:n]
    maps = t[image, order].float().numpy()
    cols = min(cols, len(order))
    h, w = maps.shape[1:]
    # About PLOT_WIDTH screen pixels across: leave a label's height (LABEL_PX) above each row of tiles.
    row_gap = max(2, int(np.ceil(LABEL_PX * cols * (w + GAP) / PLOT_WIDTH)))
    mosaic, origins = _mosaic(maps, cols, row_gap)
    lo, hi = float(np.nanmin(mosaic)), float(np.nanmax(mosaic))
    if lo < 0:
        bound = max(abs(lo), abs(hi)) or 1.0
        scale = dict(colorscale="RdBu", reversescale=True, zmin=-bound, zmax=bound, zmid=0)
    else:
        scale = dict(colorscale="Viridis", zmin=0, zmax=hi or 1.0)
    fig = go.Figure(
        go.Heatmap(
            z=mosaic,
            hoverongaps=False,
            colorbar=dict(thickness=12, len=0.9),
            hovertemplate=_("value %{z:.3f}") + "<extra></extra>",
            **scale,
        )
    )
    for channel, (top, left) in zip(order, origins):
        fig.add_annotation(
            x=left - 0.5,
            y=top - 0.6,
            text=f"#{channel}",
            showarrow=False,
            xanchor="left",
            yanchor="bottom",
            font=dict(size=10, color="#333333"),
        )
    aspect = mosaic.shape[0] / mosaic.shape[1]
    base_layout(fig, title=title, x="", y="", height=height or int(75 + PLOT_WIDTH * aspect))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(margin=dict(l=10, r=10, t=60, b=10))
    return fig


def evidence_figure(split: EvidenceSplit, image: int = 0, *, title: str | None = None) -> go.Figure:
    """One image's evidence at each block's sum: the identity part and the branch part, side by side."""
    names = list(split.blocks)
    identity = [float(split.blocks[b].identity[image]) for b in names]
    branch = [float(split.blocks[b].branch[image]) for b in names]
    fig = go.Figure()
    x = list(range(len(names)))
    if split.twin == "resnet":
        fig.add_bar(x=x, y=identity, name=_("along the skip: g · s(x)"), marker_color=IDENTITY_COLOR, customdata=names)
    fig.add_bar(x=x, y=branch, name=_("through the branch: g · F(x)"), marker_color=RESIDUAL_COLOR, customdata=names)
    fig.update_traces(hovertemplate="%{customdata}: %{y:.3g}<extra>%{fullData.name}</extra>")
    base_layout(
        fig,
        title=title or _("{twin}: the class evidence at each block's sum, by path").format(twin=twin_label(split.twin)),
        x=_("block (stages separated by dotted lines)"),
        y=_("evidence (first order)"),
    )
    fig.update_layout(barmode="group")
    _title_above_legend(fig)
    _block_axis(fig, names)
    return fig


def identity_share_figure(splits: Mapping[str, EvidenceSplit], *, title: str | None = None) -> go.Figure:
    """The median identity share of evidence per block, one line per network (``{"ResNet-20": split, ...}``).

    Blocks are placed by their relative depth (first block at 0, last at 1), so nets of different depths share
    the axis; error bars span the quartiles over the images.
    """
    fig = go.Figure()
    for colour, (label, split) in zip(DEPTH_PALETTE, splits.items()):
        shares = split.identity_share()
        names = list(shares)
        med = np.array([np.nanmedian(shares[b]) for b in names])
        q1 = np.array([np.nanpercentile(shares[b], 25) for b in names])
        q3 = np.array([np.nanpercentile(shares[b], 75) for b in names])
        depth = np.linspace(0, 1, len(names)) if len(names) > 1 else np.zeros(1)
        fig.add_trace(
            go.Scatter(
                x=depth,
                y=med,
                name=label,
                mode="lines+markers",
                line=dict(color=colour, width=2.5),
                error_y=dict(type="data", symmetric=False, array=q3 - med, arrayminus=med - q1, thickness=1),
                customdata=names,
                hovertemplate="%{customdata}: %{y:.0%}<extra>" + label + "</extra>",
            )
        )
    fig.add_hline(
        y=0.5,
        line=dict(color="#888888", dash="dot"),
        annotation_text=_("half along the skip, half through the branch"),
        annotation_position="bottom left",
    )
    base_layout(
        fig,
        title=title or _("How much of the class evidence travels along the skip, block by block"),
        x=_("relative depth of the block (0: first block, 1: last block)"),
        y=_("identity share of the evidence"),
    )
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    _title_above_legend(fig)
    return fig


def channel_grid_text(t: torch.Tensor, channels: Sequence[int], *, title: str, image: int = 0) -> str:
    """The text alternative of :func:`channel_grid_figure`: which channels, in which order, and their range."""
    maps = t[image, list(channels)].float()
    energy = channel_energy(t[image : image + 1])
    strongest = ", ".join(f"#{c} ({float(energy[c]):.3g})" for c in list(channels)[:4])
    return _(
        "{title}: {n} of {total} channels, highest energy first: {strongest}, ...; values from {lo:.3g} to {hi:.3g}."
    ).format(
        title=title,
        n=len(channels),
        total=t.shape[1],
        strongest=strongest,
        lo=float(maps.min()),
        hi=float(maps.max()),
    )
