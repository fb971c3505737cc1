"""Plotly figures of loss landscapes: both twins side by side, on one colour scale.

A ResNet's walls can reach hundreds while its valley floor is near 0.001, so colours
and heights are on a log scale (log₁₀ of the loss), shared by both twins.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .i18n import _
from .landscape import NONCONVEX_TOL, Line, OptimizerPath, Surface, curvature
from .models import TWINS, twin_label
from .style import COLORS, DASH, apply_template

COLORSCALE = "Viridis"
MAX_LOSS = 1e3  # colours and heights are clipped here (log scale)


def _log_range(surfaces: dict[str, Surface]) -> tuple[float, float]:
    values = np.concatenate([s.loss[np.isfinite(s.loss) & (s.loss > 0)].ravel() for s in surfaces.values()])
    if values.size == 0:
        return -3.0, 1.0
    lo = math.log10(max(values.min(), 1e-6))
    hi = math.log10(min(values.max(), MAX_LOSS))
    return lo, max(hi, lo + 1e-3)


def _log_loss(surface: Surface) -> np.ndarray:
    loss = np.where(np.isfinite(surface.loss), surface.loss, MAX_LOSS)
    return np.log10(np.clip(loss, 1e-6, MAX_LOSS))


def _colorbar(lo: float, hi: float) -> dict:
    ticks = [v for v in (1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100, 1000) if lo - 1e-9 <= math.log10(v) <= hi + 1e-9]
    return dict(
        title=dict(text=_("loss (log scale)"), side="right"),
        tickvals=[math.log10(v) for v in ticks],
        ticktext=[f"{v:g}" for v in ticks],
    )


def _hover(surface: Surface) -> tuple[np.ndarray, str]:
    custom = np.dstack([surface.loss.T, 100 * surface.accuracy.T])
    template = (
        _("α = %{x:.2f}, β = %{y:.2f}")
        + "<br>"
        + _("loss %{customdata[0]:.4g}")
        + "<br>"
        + _("accuracy %{customdata[1]:.1f}%")
        + "<extra></extra>"
    )
    return custom, template


def _axis_titles(surface: Surface) -> tuple[str, str]:
    if surface.kind == "pca":
        return _("1st PCA direction"), _("2nd PCA direction")
    return _("α (direction 1)"), _("β (direction 2)")


def _titles(surfaces: dict[str, Surface]) -> list[str]:
    out = []
    for twin, s in surfaces.items():
        share = s.nonconvex_share
        note = _("non-convex points: {share:.0%}").format(share=share) if math.isfinite(share) else ""
        out.append(f"{twin_label(twin)} · {note}" if note else twin_label(twin))
    return out


def _ordered(surfaces: dict[str, Surface]) -> dict[str, Surface]:
    return {t: surfaces[t] for t in (*[t for t in TWINS if t in surfaces], *[t for t in surfaces if t not in TWINS])}


def _coords(trajectory) -> np.ndarray | None:
    if trajectory is None:
        return None
    coords = trajectory.coords if isinstance(trajectory, OptimizerPath) else np.asarray(trajectory, dtype=float)
    return coords if coords.ndim == 2 and coords.shape[1] == 2 and len(coords) else None


def twin_contour_figure(surfaces: dict[str, Surface], trajectory=None, *, height: int = 460) -> go.Figure:
    """Contour plots of both twins' loss side by side, one log colour scale.

    ``trajectory``: a dict twin -> :class:`OptimizerPath` (or a k x 2 array of coordinates in the surface's
    directions), drawn as a path from the first snapshot to the centre.
    """
    surfaces = _ordered(surfaces)
    lo, hi = _log_range(surfaces)
    fig = make_subplots(rows=1, cols=len(surfaces), subplot_titles=_titles(surfaces), horizontal_spacing=0.08)
    for col, (twin, s) in enumerate(surfaces.items(), start=1):
        custom, template = _hover(s)
        fig.add_trace(
            go.Contour(
                x=s.alphas,
                y=s.betas,
                z=_log_loss(s).T,
                customdata=custom,
                hovertemplate=template,
                coloraxis="coloraxis",
                contours=dict(start=lo, end=hi, size=(hi - lo) / 24),
                line=dict(width=0.5),
                name=twin_label(twin),
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=[0],
                y=[0],
                mode="markers",
                marker=dict(symbol="x", size=10, color="white", line=dict(width=1, color="black")),
                name=_("trained weights"),
                showlegend=col == 1,
                legendgroup="centre",
                hovertemplate=_("the trained weights (α = β = 0)") + "<extra></extra>",
            ),
            row=1,
            col=col,
        )
        coords = _coords(trajectory.get(twin) if isinstance(trajectory, dict) else None)
        if coords is not None:
            fig.add_trace(
                go.Scatter(
                    x=coords[:, 0],
                    y=coords[:, 1],
                    mode="lines+markers",
                    name=_("optimiser's path"),
                    line=dict(color="white", width=2, dash=DASH.get(twin, "solid")),
                    marker=dict(size=5, color=COLORS.get(twin, "white"), line=dict(width=1, color="white")),
                    showlegend=col == 1,
                    legendgroup="path",
                    hovertemplate=_("snapshot %{pointNumber}") + "<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=coords[:1, 0],
                    y=coords[:1, 1],
                    mode="markers",
                    name=_("start"),
                    marker=dict(symbol="circle-open", size=12, color="white", line=dict(width=2)),
                    showlegend=col == 1,
                    legendgroup="start",
                ),
                row=1,
                col=col,
            )
        xt, yt = _axis_titles(s)
        fig.update_xaxes(title_text=xt, row=1, col=col)
        fig.update_yaxes(title_text=yt, row=1, col=col, scaleanchor=f"x{col if col > 1 else ''}", scaleratio=1)
    apply_template(fig)
    fig.update_layout(
        coloraxis=dict(colorscale=COLORSCALE, cmin=lo, cmax=hi, colorbar=_colorbar(lo, hi)),
        height=height,
        margin=dict(l=60, r=20, t=60, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=-0.25, x=0),
    )
    return fig


def twin_surface_figure(surfaces: dict[str, Surface], *, height: int = 520) -> go.Figure:
    """3-D surfaces of both twins side by side; height and colour are log₁₀ of the loss, one scale."""
    surfaces = _ordered(surfaces)
    lo, hi = _log_range(surfaces)
    fig = make_subplots(
        rows=1,
        cols=len(surfaces),
        specs=[[{"type": "scene"}] * len(surfaces)],
        subplot_titles=_titles(surfaces),
        horizontal_spacing=0.02,
    )
    for col, (twin, s) in enumerate(surfaces.items(), start=1):
        custom, template = _hover(s)
        fig.add_trace(
            go.Surface(
                x=s.alphas,
                y=s.betas,
                z=np.clip(_log_loss(s).T, lo, hi),
                customdata=custom,
                hovertemplate=template,
                coloraxis="coloraxis",
                name=twin_label(twin),
                showscale=False,
            ),
            row=1,
            col=col,
        )
    apply_template(fig)
    xt, yt = _axis_titles(next(iter(surfaces.values())))
    bar = _colorbar(lo, hi)
    scene = dict(
        xaxis_title=xt,
        yaxis_title=yt,
        zaxis=dict(title=_("loss (log scale)"), range=[lo, hi], tickvals=bar["tickvals"], ticktext=bar["ticktext"]),
        camera=dict(eye=dict(x=1.5, y=1.5, z=1.0)),
        aspectmode="cube",
    )
    fig.update_layout(
        **{f"scene{i if i > 1 else ''}": scene for i in range(1, len(surfaces) + 1)},
        coloraxis=dict(colorscale=COLORSCALE, cmin=lo, cmax=hi, colorbar=bar),
        height=height,
        margin=dict(l=0, r=0, t=60, b=0),
    )
    return fig


def slice_figure(surfaces: dict[str, Surface], *, height: int = 380) -> go.Figure:
    """1-D slices through the centre of each surface: along direction 1 (β = 0) and direction 2 (α = 0)."""
    surfaces = _ordered(surfaces)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[_("along direction 1 (β = 0)"), _("along direction 2 (α = 0)")],
        shared_yaxes=True,
    )
    for twin, s in surfaces.items():
        mid_a, mid_b = len(s.alphas) // 2, len(s.betas) // 2
        for col, (t, loss) in enumerate(((s.alphas, s.loss[:, mid_b]), (s.betas, s.loss[mid_a, :])), start=1):
            fig.add_trace(
                go.Scatter(
                    x=t,
                    y=loss,
                    mode="lines+markers",
                    name=twin_label(twin),
                    line=dict(color=COLORS.get(twin), dash=DASH.get(twin, "solid"), width=2),
                    marker=dict(size=4),
                    showlegend=col == 1,
                    legendgroup=twin,
                ),
                row=1,
                col=col,
            )
    apply_template(fig)
    fig.update_yaxes(type="log", exponentformat="power", title_text=_("loss (log scale)"), row=1, col=1)
    fig.update_xaxes(title_text=_("step along the direction"))
    fig.update_layout(
        height=height, margin=dict(l=60, r=20, t=60, b=50), legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0)
    )
    return fig


def line_figure(lines: dict[str, Line], *, height: int = 380) -> go.Figure:
    """Loss along 1-D lines (random slices or the straight line from the initial to the trained weights)."""
    fig = go.Figure()
    kinds = set()
    for twin, line in lines.items():
        kinds.add(line.kind)
        fig.add_trace(
            go.Scatter(
                x=line.t,
                y=line.loss,
                mode="lines+markers",
                name=twin_label(twin),
                line=dict(color=COLORS.get(twin), dash=DASH.get(twin, "solid"), width=2),
                marker=dict(size=4),
            )
        )
    interpolation = kinds == {"interpolation"}
    title = _("From the initial to the trained weights") if interpolation else _("A random 1-D slice")
    x = _("t (0: initial weights, 1: trained weights)") if interpolation else _("step along the direction")
    apply_template(fig)
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=_("loss (log scale)"),
        height=height,
        margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    fig.update_yaxes(type="log", exponentformat="power")
    if interpolation:
        for t in (0, 1):
            fig.add_vline(x=t, line=dict(color="grey", dash="dot", width=1))
    return fig


def convexity_figure(surfaces: dict[str, Surface], *, height: int = 400) -> go.Figure:
    """Where each surface is non-convex (Li et al. Fig. 9): |λ_min / λ_max| where λ_min < 0, else 0.

    Points counted as non-convex by ``nonconvex_share`` are those above NONCONVEX_TOL.
    """
    surfaces = _ordered(surfaces)
    fig = make_subplots(rows=1, cols=len(surfaces), subplot_titles=_titles(surfaces), horizontal_spacing=0.08)
    for col, (twin, s) in enumerate(surfaces.items(), start=1):
        lam_min, lam_max = curvature(s)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(lam_min < 0, np.abs(lam_min) / np.maximum(np.abs(lam_max), 1e-12), 0.0)
        ratio = np.clip(np.nan_to_num(ratio, nan=0.0), 0, 1)
        fig.add_trace(
            go.Heatmap(
                x=s.alphas[1:-1],
                y=s.betas[1:-1],
                z=ratio.T,
                coloraxis="coloraxis",
                hovertemplate=_("α = %{x:.2f}, β = %{y:.2f}") + "<br>|λmin/λmax| %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        xt, yt = _axis_titles(s)
        fig.update_xaxes(title_text=xt, row=1, col=col)
        fig.update_yaxes(title_text=yt, row=1, col=col, scaleanchor=f"x{col if col > 1 else ''}", scaleratio=1)
    apply_template(fig)
    fig.update_layout(
        coloraxis=dict(
            colorscale="Blues",
            cmin=0,
            cmax=1,
            colorbar=dict(
                title=dict(text="|λmin/λmax|", side="right"),
                tickvals=[0, NONCONVEX_TOL, 0.5, 1],
                ticktext=["0", f"{NONCONVEX_TOL:g}", "0.5", "1"],
            ),
        ),
        height=height,
        margin=dict(l=60, r=20, t=60, b=50),
    )
    return fig
