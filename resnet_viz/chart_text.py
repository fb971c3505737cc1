"""Text alternatives for charts: a few sentences written from a plotly figure's own numbers.

A screen-reader user (and anyone who cannot read the colours) gets what the chart shows: its title, then per
line its first and last value and its range, per bar chart its largest and smallest bar, per heatmap or surface
where its lowest and highest values are. Nothing is written by hand, so the text cannot drift from the chart.
"""
from __future__ import annotations

import math
import re

from .i18n import _

MAX_TRACES = 6  # a longer list is summarised by its count: nobody listens to twelve lines read out
_TAGS = re.compile(r"<[^>]+>")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_number(value: float) -> str:
    """Three significant digits; ``4×10⁻⁴`` style below 10⁻³ and from 10⁵ on."""
    if value is None or not math.isfinite(value):
        return _("undefined")
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def _plain(text) -> str:
    return _TAGS.sub("", str(text or "")).strip()


def _numbers(values) -> list[float | None]:
    out = []
    for v in list(values) if values is not None else []:
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(f if math.isfinite(f) else None)
    return out


def _label(value) -> str:
    if isinstance(value, float):
        return format_number(value)
    return _plain(value)


def _line(name: str, xs, ys) -> str | None:
    points = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if not points:
        return None
    (x0, first), (x1, last) = points[0], points[-1]
    if len(points) == 1:
        return _("{name}: {value} at {x}.").format(name=name, value=format_number(first), x=_label(x0))
    low = min(points, key=lambda p: p[1])
    high = max(points, key=lambda p: p[1])
    return _("{name}: {first} at {x0}, {last} at {x1}; lowest {low} at {xlow}, highest {high} at {xhigh}.").format(
        name=name, first=format_number(first), x0=_label(x0), last=format_number(last), x1=_label(x1),
        low=format_number(low[1]), xlow=_label(low[0]), high=format_number(high[1]), xhigh=_label(high[0]))


def _bars(name: str, categories, values) -> str | None:
    pairs = [(c, v) for c, v in zip(categories, values) if v is not None]
    if not pairs:
        return None
    high = max(pairs, key=lambda p: p[1])
    low = min(pairs, key=lambda p: p[1])
    return _("{name}: largest bar {high_label} ({high}), smallest {low_label} ({low}), {n} bars.").format(
        name=name, high_label=_label(high[0]), high=format_number(high[1]), low_label=_label(low[0]),
        low=format_number(low[1]), n=len(pairs))


def _grid(name: str, trace: dict) -> str | None:
    rows = trace.get("z")
    if rows is None:
        return None
    rows = [_numbers(row) for row in rows]
    cells = [(v, i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if v is not None]
    if not cells:
        return None
    xs, ys = list(trace.get("x") or []), list(trace.get("y") or [])

    def where(i: int, j: int) -> str:
        x = _label(xs[j]) if j < len(xs) else str(j)
        y = _label(ys[i]) if i < len(ys) else str(i)
        return f"({x}, {y})"

    low, high = min(cells), max(cells)
    return _("{name}: values from {low} at {low_at} to {high} at {high_at}.").format(
        name=name, low=format_number(low[0]), low_at=where(low[1], low[2]), high=format_number(high[0]),
        high_at=where(high[1], high[2]))


def _trace_sentence(trace: dict, index: int) -> str | None:
    name = _plain(trace.get("name")) or _("series {n}").format(n=index + 1)
    kind = trace.get("type", "scatter")
    if kind in ("heatmap", "contour", "surface"):
        return _grid(name, trace)
    if kind == "bar":
        if trace.get("orientation") == "h":
            return _bars(name, list(trace.get("y") or []), _numbers(trace.get("x")))
        return _bars(name, list(trace.get("x") or []), _numbers(trace.get("y")))
    if kind in ("scatter", "scattergl", "scatter3d"):
        ys = _numbers(trace.get("y"))
        xs = list(trace.get("x")) if trace.get("x") is not None else list(range(len(ys)))
        return _line(name, xs, ys)
    return None


def describe_spec(spec: dict) -> str:
    """The text alternative of a figure given as its plotly dict (``fig.to_dict()``)."""
    layout = spec.get("layout", {})
    title = layout.get("title")
    title = _plain(title.get("text") if isinstance(title, dict) else title)
    traces = [t for t in spec.get("data", []) if t.get("visible", True) is not False]
    sentences = [s for i, t in enumerate(traces[:MAX_TRACES]) if (s := _trace_sentence(t, i))]
    head = _("Chart: {title}.").format(title=title) if title else _("Chart.")
    if len(traces) > MAX_TRACES:
        sentences.append(_("{n} more series are drawn.").format(n=len(traces) - MAX_TRACES))
    if not sentences:
        sentences.append(_("It draws no numbers."))
    return " ".join([head, *sentences])


def describe(fig) -> str:
    """The text alternative of a plotly figure, from its own numbers (title, lines, bars, heatmaps)."""
    return describe_spec(fig.to_dict() if hasattr(fig, "to_dict") else fig)
