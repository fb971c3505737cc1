"""Text alternatives for charts: a few sentences written from a plotly figure's own numbers.

A screen-reader user (and anyone who cannot read the colours) gets what the chart shows: its title, then per
line its first and last value and its range, per bar chart its largest and smallest bar, per heatmap or surface
where its lowest and highest values are. Nothing is written by hand, so the text cannot drift from the chart.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .i18n import N_, _

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
    return "" if text is None else _TAGS.sub("", str(text)).strip()


def _sequence(values) -> list:
    """A trace's x, y or z as a list (plotly keeps tuples, lists or numpy arrays)."""
    if values is None:
        return []
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _numbers(values) -> list[float | None]:
    out: list[float | None] = []
    for v in _sequence(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            out.append(None)
            continue
        out.append(f if math.isfinite(f) else None)
    return out


def _label(value) -> str:
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        return format_number(value)
    return _plain(value)


def _line(name: str, xs, ys) -> str | None:
    points = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if not points:
        return None
    (x0, first), (x1, last) = points[0], points[-1]
    if len(points) == 1:
        return _("{name}: a point at ({x}, {y}).").format(name=name, x=_label(x0), y=format_number(first))
    low = min(points, key=lambda p: p[1])
    high = max(points, key=lambda p: p[1])
    return _("{name}: {first} at {x0}, {last} at {x1}; lowest {low} at {xlow}, highest {high} at {xhigh}.").format(
        name=name,
        first=format_number(first),
        x0=_label(x0),
        last=format_number(last),
        x1=_label(x1),
        low=format_number(low[1]),
        xlow=_label(low[0]),
        high=format_number(high[1]),
        xhigh=_label(high[0]),
    )


def _bars(name: str, categories, values) -> str | None:
    pairs = [(c, v) for c, v in zip(categories, values) if v is not None]
    if not pairs:
        return None
    high = max(pairs, key=lambda p: p[1])
    low = min(pairs, key=lambda p: p[1])
    return _("{name}: largest bar {high_label} ({high}), smallest {low_label} ({low}), {n} bars.").format(
        name=name,
        high_label=_label(high[0]),
        high=format_number(high[1]),
        low_label=_label(low[0]),
        low=format_number(low[1]),
        n=len(pairs),
    )


def _grid(name: str, trace: dict, scale: str) -> str | None:
    rows = [_numbers(row) for row in _sequence(trace.get("z"))]
    cells = [(v, i, j) for i, row in enumerate(rows) for j, v in enumerate(row) if v is not None]
    if not cells:
        return None
    xs, ys = _sequence(trace.get("x")), _sequence(trace.get("y"))

    def where(i: int, j: int) -> str:
        x = _label(xs[j]) if j < len(xs) else str(j)
        y = _label(ys[i]) if i < len(ys) else str(i)
        return f"({x}, {y})"

    low, high = min(cells), max(cells)
    what = scale or _("values")
    return _("{name}: {what} from {low} at {low_at} to {high} at {high_at}.").format(
        name=name,
        what=what,
        low=format_number(low[0]),
        low_at=where(low[1], low[2]),
        high=format_number(high[0]),
        high_at=where(high[1], high[2]),
    )


def _trace_sentence(trace: dict, index: int, panels: list[str], scale: str) -> str | None:
    # An unnamed trace takes its panel's title (a subplot's annotation), else a number.
    panel = panels[index] if index < len(panels) else ""
    name = _plain(trace.get("name")) or panel or _("series {n}").format(n=index + 1)
    kind = trace.get("type", "scatter")
    if kind in ("heatmap", "contour", "surface"):
        return _grid(name, trace, scale)
    if kind == "bar":
        if trace.get("orientation") == "h":
            return _bars(name, _sequence(trace.get("y")), _numbers(trace.get("x")))
        return _bars(name, _sequence(trace.get("x")), _numbers(trace.get("y")))
    if kind in ("scatter", "scattergl", "scatter3d"):
        ys = _numbers(trace.get("y"))
        xs = _sequence(trace.get("x")) or list(range(len(ys)))
        return _line(name, xs, ys)
    return None


def _describe(title, traces: list[dict], panels: list[str], scale: str) -> str:
    title = _plain(title.get("text") if isinstance(title, dict) else title)
    traces = [t for t in traces if t.get("visible", True) is not False]
    sentences = [s for i, t in enumerate(traces[:MAX_TRACES]) if (s := _trace_sentence(t, i, panels, _plain(scale)))]
    head = _("Chart: {title}.").format(title=title) if title else _("Chart.")
    if len(traces) > MAX_TRACES:
        sentences.append(_("{n} more series are drawn.").format(n=len(traces) - MAX_TRACES))
    if not sentences:
        sentences.append(_("It draws no numbers."))
    return " ".join([head, *sentences])


_TRACE_FIELDS = ("type", "name", "x", "y", "z", "orientation", "visible")


def describe(fig) -> str:
    """The text alternative of a plotly figure, from its own numbers (title, lines, bars, heatmaps).

    Reads the traces' fields directly: a live chart is described on every redraw, and ``fig.to_dict()`` would
    copy all of it first.
    """
    traces = [{f: trace[f] for f in _TRACE_FIELDS if f in trace and trace[f] is not None} for trace in fig.data]
    layout = fig.layout
    panels = [_plain(a.text) for a in layout.annotations or () if a.text and a.showarrow is False]
    scale = ""
    if "coloraxis" in layout and layout.coloraxis.colorbar.title.text:
        bar = layout.coloraxis.colorbar
        scale = bar.title.text
        if _log10_ticks(bar.tickvals, bar.ticktext):  # colours drawn from log10 values, ticks labelled in values
            for trace in traces:
                if "z" in trace:
                    trace["z"] = [[None if v is None else 10**v for v in row] for row in map(_numbers, trace["z"])]
    return _describe(layout.title.text, traces, panels, scale)


def _log10_ticks(values, texts) -> bool:
    """True when a colour bar's tick labels are 10 to the power of its tick positions."""
    values, texts = _numbers(values), _numbers(texts)
    return (
        bool(values)
        and len(values) == len(texts)
        and all(v is not None and t is not None and math.isclose(10**v, t, rel_tol=0.01) for v, t in zip(values, texts))
    )


# Where a heatmap is strongest, on a 3 x 3 grid over the image (row by row).
_PLACES = (
    N_("top left"),
    N_("top"),
    N_("top right"),
    N_("left"),
    N_("centre"),
    N_("right"),
    N_("bottom left"),
    N_("bottom"),
    N_("bottom right"),
)


def heatmap_text(heatmap) -> str:
    """The text alternative of an attribution heatmap (H x W, larger = more evidence): where it peaks, and how
    much of the image holds half of its heat."""
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0, None)
    total = heat.sum()
    if heat.ndim != 2 or total <= 0:
        return _("Heatmap: empty, no evidence for this class.")
    i, j = np.unravel_index(int(heat.argmax()), heat.shape)
    place = _PLACES[3 * min(2, 3 * i // heat.shape[0]) + min(2, 3 * j // heat.shape[1])]
    ranked = np.sort(heat.ravel())[::-1]
    half = int(np.searchsorted(np.cumsum(ranked), total / 2)) + 1
    return _("Heatmap: strongest at the {place} of the image; half of its heat lies on {share} of the image.").format(
        place=_(place), share=f"{half / ranked.size:.0%}"
    )
