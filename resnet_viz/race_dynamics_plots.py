"""Training dynamics at a glance: layer x step heatmaps of a race's snapshots.

A race records, every ``snapshot_every`` steps (20 by default) and for every run (each twin, depth and seed), the
gradient norm of each main-path weight (read between backward and the update) and each block's ‖F(x)‖/‖x‖ on a
fixed probe batch (:mod:`resnet_viz.race.run`). Here those snapshots become two heatmaps per depth: the gradient
norm per layer and the residual ratio per block, against the training step, with the ResNet and its plain twin
side by side on one shared colour scale, both on a log scale (one colour step is one factor, whichever way).

Every function takes a race as :meth:`resnet_viz.race.Race.to_dict` or :func:`resnet_viz.race.load_race` returns it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .i18n import _
from .models import TWINS
from .race import race_seeds, run_label
from .race_plots import runs_of
from .style import apply_template

KINDS = ("grad_norms", "ratios")
GRAD_COLORSCALE = "Viridis"  # sequential, readable with any colour vision; dark = small gradient
RATIO_COLORSCALE = "RdBu_r"  # diverging around ratio 1: blue = F(x) smaller than x, red = larger
_NICE = (1, 2, 5)


@dataclass
class Grid:
    """One run's snapshots as a grid: ``values[i][j]`` is layer (or block) ``rows[i]`` at ``steps[j]``; None where
    the snapshot lacks it or the value is not a positive finite number (a log scale cannot draw it)."""

    twin: str
    depth: int
    seed: int
    steps: list[int]
    rows: list[str]
    values: list[list[float | None]]

    def finite(self) -> list[float]:
        return [v for row in self.values for v in row if v is not None]


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def dynamics_grids(result: dict, depth: int, kind: str = "grad_norms", seed: int | None = None) -> dict[str, Grid]:
    """twin -> its :class:`Grid` of ``kind`` (``"grad_norms"`` or ``"ratios"``) at ``depth`` on ``seed`` (default
    the race's first seed), ResNet first. Twins without any such snapshot are left out."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if seed is None:
        seeds = race_seeds(result)
        seed = seeds[0] if seeds else 0
    by_twin = {run["arch"]: run for run in runs_of(result, depth, seed)}
    grids = {}
    for twin in TWINS:
        run = by_twin.get(twin)
        if run is None:
            continue
        snaps = [s for s in run.get("snapshots") or [] if isinstance(s, dict) and isinstance(s.get(kind), dict)]
        snaps = [s for s in snaps if s[kind]]
        if not snaps:
            continue
        rows = list(dict.fromkeys(name for s in snaps for name in s[kind]))
        steps = [int(s["step"]) for s in snaps]
        values = [[_positive(s[kind].get(name)) for s in snaps] for name in rows]
        grids[twin] = Grid(twin, depth, seed, steps, rows, values)
    return grids


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 1, 2, 5 x 10^k between 10^lo and 10^hi (only powers of ten on a wide range), placed at
    their log10 and labelled with their values (so :mod:`resnet_viz.chart_text` reads the values back)."""
    nice = _NICE if hi - lo <= 3 else (1,)
    ticks = []
    for k in range(math.floor(lo), math.ceil(hi) + 1):
        for m in nice:
            v = m * 10.0**k
            if lo - 1e-9 <= math.log10(v) <= hi + 1e-9:
                ticks.append(v)
    return [math.log10(v) for v in ticks], [f"{v:g}" for v in ticks]


def _heatmap_figure(
    grids: dict[str, Grid], *, title: str, rows: str, scale: str, colorscale: str, centre_one: bool
) -> go.Figure:
    twins = list(grids)
    labels = [run_label(t, grids[t].depth) for t in twins]
    fig = make_subplots(
        rows=1, cols=max(1, len(twins)), subplot_titles=labels, shared_yaxes=True, horizontal_spacing=0.04
    )
    apply_template(fig)
    logs = [math.log10(v) for g in grids.values() for v in g.finite()]
    lo, hi = (min(logs), max(logs)) if logs else (0.0, 0.0)
    if centre_one:  # ratio 1 (F as large as x) in the middle of the diverging scale
        reach = max(abs(lo), abs(hi), math.log10(2))
        lo, hi = -reach, reach
    elif hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    tickvals, ticktext = _log_ticks(lo, hi)
    for col, twin in enumerate(twins, start=1):
        g = grids[twin]
        fig.add_trace(
            go.Heatmap(
                x=g.steps,
                y=g.rows,
                z=[[None if v is None else math.log10(v) for v in row] for row in g.values],
                customdata=g.values,
                coloraxis="coloraxis",
                name=labels[col - 1],
                hovertemplate=_("{row}, step {step}: {value}").format(
                    row="%{y}", step="%{x}", value="%{customdata:.3g}"
                )
                + f"<extra>{labels[col - 1]}</extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=_("training step"), row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_yaxes(title_text=rows, row=1, col=1)
    fig.update_layout(
        title=title,
        height=380 if max((len(g.rows) for g in grids.values()), default=0) <= 30 else 480,
        margin=dict(l=110, r=20, t=70, b=50),
        coloraxis=dict(
            colorscale=colorscale,
            cmin=lo,
            cmax=hi,
            colorbar=dict(title=scale, tickvals=tickvals, ticktext=ticktext, thickness=12),
        ),
    )
    return fig


def gradient_heatmap_figure(result: dict, depth: int, seed: int | None = None) -> go.Figure:
    """Gradient norm per layer (rows, input on top) against the training step, ResNet and plain twin of ``depth``
    side by side on one log colour scale. The heatmaps hold log10 of the norms; ``customdata`` the norms."""
    grids = dynamics_grids(result, depth, "grad_norms", seed)
    return _heatmap_figure(
        grids,
        title=_("Gradient norm per layer during training, depth {depth}").format(depth=depth),
        rows=_("layer (input at the top)"),
        scale=_("gradient norm (log scale)"),
        colorscale=GRAD_COLORSCALE,
        centre_one=False,
    )


def ratio_heatmap_figure(result: dict, depth: int, seed: int | None = None) -> go.Figure:
    """‖F(x)‖/‖x‖ per block (rows, input on top) against the training step, both twins of ``depth`` side by side
    on one log colour scale centred on 1. The heatmaps hold log10 of the ratios; ``customdata`` the ratios."""
    grids = dynamics_grids(result, depth, "ratios", seed)
    return _heatmap_figure(
        grids,
        title=_("‖F(x)‖ / ‖x‖ per block during training, depth {depth}").format(depth=depth),
        rows=_("block (input at the top)"),
        scale=_("‖F(x)‖ / ‖x‖ (log scale)"),
        colorscale=RATIO_COLORSCALE,
        centre_one=True,
    )


def gradient_spread(grid: Grid, step_index: int) -> float | None:
    """How many times larger the gradient norm is at the first layer than at the last convolution at one snapshot
    (>1: it grows toward the input, <1: it shrinks toward the input); None when either is missing.

    The last row (the classifier ``fc``) is left out: its gradient is that of a linear layer on pooled features,
    not of a layer the backward pass has crossed convolutions to reach.
    """
    convs = [i for i, name in enumerate(grid.rows) if name != "fc"]
    if len(convs) < 2:
        return None
    first, last = grid.values[convs[0]][step_index], grid.values[convs[-1]][step_index]
    if first is None or last is None:
        return None
    return first / last


def median_ratio(grid: Grid, step_index: int) -> float | None:
    """The median of a snapshot's per-block ‖F(x)‖/‖x‖."""
    values = sorted(v for row in grid.values if (v := row[step_index]) is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
