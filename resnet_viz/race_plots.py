"""Figures of a training race, drawn like He et al. 2015 (Fig. 1 and Fig. 6).

ResNets solid, plain nets dashed, one colour per depth. Every function takes a
race as :meth:`resnet_viz.race.Race.to_dict` or :func:`resnet_viz.race.load_race`
returns it and gives back a plotly figure.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from .gradients import GradientFlow
from .gradients_plots import gradient_norm_figure
from .i18n import N_, _
from .models import TWINS
from .race import nets, race_seeds, run_label, run_seed
from .residual_plots import ratio_figure
from .style import DASH, DEPTH_PALETTE, base_layout

METRICS = {"train_loss": N_("training loss"), "train_error": N_("training error")}


def depth_colors(result: dict) -> dict[int, str]:
    depths = sorted({run["depth"] for run in result["runs"]})
    return {d: DEPTH_PALETTE[i % len(DEPTH_PALETTE)] for i, d in enumerate(depths)}


def _smooth(values: list[float], window: int) -> list[float | None]:
    """Trailing mean over ``window`` points; single steps are too noisy to compare runs."""
    out, acc = [], []
    for v in values:
        if v is not None and math.isfinite(v):
            acc.append(v)
        acc = acc[-window:]
        out.append(sum(acc) / len(acc) if acc and v is not None and math.isfinite(v) else None)
    return out


def _window(run: dict, smooth_steps: int) -> int:
    hist = run["history"]
    if len(hist) < 2:
        return 1
    spacing = max(1, (hist[-1]["step"] - hist[0]["step"]) / (len(hist) - 1))
    return max(1, round(smooth_steps / spacing))


def _band_color(color: str, alpha: float = 0.18) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def curves_figure(
    result: dict, metric: str = "train_loss", *, smooth_steps: int = 10, height: int = 430, each_seed: bool = False
) -> go.Figure:
    """Training loss or error against steps; ``metric="train_error"`` adds the test error at checkpoints (bold).

    Each net (twin x depth) is drawn as the mean over its seeds, with a band from the lowest to the highest
    seed (after smoothing); ``each_seed`` adds every seed's own curve, thin.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
    colors = depth_colors(result)
    fig = go.Figure()
    groups = sorted(nets(result).items(), key=lambda kv: (kv[0][1], kv[0][0] != "resnet"))
    for (arch, depth), runs in groups:
        label = runs[0].get("label") or run_label(arch, depth)
        diverged = sum(r.get("status") == "diverged" for r in runs)
        suffix = ""
        if diverged:
            suffix = (
                _(" (diverged)")
                if len(runs) == 1
                else _(" ({count} of {seeds} seeds diverged)").format(count=diverged, seeds=len(runs))
            )
        name = label if len(runs) == 1 else _("{label}, mean of {seeds} seeds").format(label=label, seeds=len(runs))
        color, dash = colors[depth], DASH[arch]
        smoothed = {}
        for run in runs:
            smoothed[run_seed(run, result)] = dict(
                zip(
                    [row["step"] for row in run["history"]],
                    _smooth([row[metric] for row in run["history"]], _window(run, smooth_steps)),
                )
            )
        steps = sorted({s for curve in smoothed.values() for s in curve})
        at = [[c[s] for c in smoothed.values() if c.get(s) is not None] for s in steps]
        mean = [sum(v) / len(v) if v else None for v in at]
        if len(runs) > 1:
            low, high = [min(v) if v else None for v in at], [max(v) if v else None for v in at]
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=high,
                    mode="lines",
                    line=dict(width=0),
                    legendgroup=label,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=low,
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor=_band_color(color),
                    legendgroup=label,
                    showlegend=False,
                    name=_("{label}: lowest to highest seed").format(label=label),
                )
            )
            if each_seed:
                for seed, curve in smoothed.items():
                    fig.add_trace(
                        go.Scatter(
                            x=list(curve),
                            y=list(curve.values()),
                            mode="lines",
                            name=_("{label}, seed {seed}").format(label=label, seed=seed),
                            legendgroup=label,
                            showlegend=False,
                            line=dict(color=color, dash=dash, width=0.8),
                        )
                    )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=mean,
                mode="lines",
                name=f"{name}{suffix}",
                legendgroup=label,
                line=dict(color=color, dash=dash, width=1.5 if metric == "train_error" else 2.5),
            )
        )
        if metric == "train_error":
            tests: dict[int, list[float]] = {}
            for run in runs:
                for row in run["history"]:
                    if row.get("test_error") is not None:
                        tests.setdefault(row["step"], []).append(row["test_error"])
            points = sorted(tests.items())
            fig.add_trace(
                go.Scatter(
                    x=[s for s, _e in points],
                    y=[sum(e) / len(e) for _s, e in points],
                    mode="lines+markers",
                    name=_("{label} test").format(label=label),
                    legendgroup=label,
                    showlegend=False,
                    line=dict(color=color, dash=dash, width=4),
                    marker=dict(size=8),
                )
            )
    title = _("Training loss") if metric == "train_loss" else _("Error: training (thin), test (bold)")
    base_layout(
        fig,
        title=title,
        x=_("training step"),
        y=_(METRICS[metric]) if metric == "train_loss" else _("error"),
        height=height,
    )
    _legend_below(fig)
    if metric == "train_error":
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    if not any(y is not None for trace in fig.data for y in (trace.y or ())):
        _empty_axes(fig, result, metric)
    return fig


def _empty_axes(fig: go.Figure, result: dict, metric: str) -> None:
    """Before the first step: the race's whole length, and a loss up to a little above chance or an error up to
    100 %, instead of plotly's default -1 to 4, with a line on when the curves come."""
    steps = (result.get("recipe") or {}).get("steps") or 1
    fig.update_xaxes(range=[0, steps])
    if metric == "train_error":
        fig.update_yaxes(range=[0, 1])
    else:
        classes = len((result.get("dataset") or {}).get("classes") or []) or 10
        fig.update_yaxes(range=[0, round(1.25 * math.log(classes), 2)])
    fig.add_annotation(
        text=_("The curves appear after the first training steps."),
        showarrow=False,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
    )


def _legend_below(fig: go.Figure) -> go.Figure:
    """Several runs make a long legend: below the plot it cannot cover the title."""
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.22, x=0), margin=dict(b=100, t=50))
    return fig


def runs_of(result: dict, depth: int, seed: int | None) -> list[dict]:
    """The runs of ``depth`` on ``seed`` (default: the race's first seed)."""
    if seed is None:
        seeds = race_seeds(result)
        seed = seeds[0] if seeds else None
    return [run for run in result["runs"] if run["depth"] == depth and run_seed(run, result) == seed]


def snapshot_steps(result: dict, depth: int, seed: int | None = None) -> list[int]:
    """Steps at which every run of ``depth`` (on ``seed``, default the first) has a snapshot."""
    sets = [{s["step"] for s in run.get("snapshots", [])} for run in runs_of(result, depth, seed)]
    return sorted(set.intersection(*sets)) if sets else []


def _snapshot(run: dict, step: int) -> dict | None:
    return next((s for s in run.get("snapshots", []) if s["step"] == step), None)


def _twins_at(result: dict, depth: int, step: int, seed: int | None = None) -> dict[str, dict]:
    """twin -> its snapshot at ``step`` (ResNet first, as the other pages draw them)."""
    snaps = {run["arch"]: _snapshot(run, step) for run in runs_of(result, depth, seed)}
    return {twin: snap for twin in TWINS if (snap := snaps.get(twin))}


def gradient_snapshot_figure(result: dict, depth: int, step: int, seed: int | None = None) -> go.Figure:
    """Per-layer gradient norms of both twins of ``depth`` at a snapshot step: the *Gradient flow* chart."""
    flows = {
        twin: GradientFlow(
            twin=twin,
            layers=list(s["grad_norms"]),
            grad_norms=list(s["grad_norms"].values()),
            blocks=[],
            signal_std=[],
            loss=float("nan"),
        )
        for twin, s in _twins_at(result, depth, step, seed).items()
        if s.get("grad_norms")
    }
    return _legend_below(
        gradient_norm_figure(
            flows, title=_("Gradient norm per layer, depth {depth}, step {step}").format(depth=depth, step=step)
        )
    )


def ratio_snapshot_figure(result: dict, depth: int, step: int, seed: int | None = None) -> go.Figure:
    """Per-block ‖F(x)‖/‖x‖ of both twins of ``depth`` at a snapshot step: the *Residual vs identity* chart."""
    contribs = {
        twin: [{"name": name, "ratio": value} for name, value in s["ratios"].items()]
        for twin, s in _twins_at(result, depth, step, seed).items()
        if s.get("ratios")
    }
    fig = ratio_figure(contribs)
    fig.update_layout(title=_("‖F(x)‖ / ‖x‖ per block, depth {depth}, step {step}").format(depth=depth, step=step))
    _legend_below(fig)
    fig.update_layout(legend=dict(y=-0.4), margin=dict(b=130))  # below the slanted block names
    return fig
