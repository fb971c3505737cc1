"""Pictures of explanations: heatmap overlays, top-k charts, sanity-check and deletion/insertion curves."""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from .attribution.methods import METHODS
from .data import class_display_name
from .explain import Explanation
from .i18n import N_, _
from .models import twin_label
from .style import COLORS, DASH, apply_template, base_layout

# In curve charts each method has a colour of Okabe & Ito's colour-blind-safe set (without its yellow, too light
# on white), the same in every chart, and each curve of a chart its own marker symbol: the symbols tell methods
# apart where colours cannot (colour-vision deficiency, greyscale print). A method's stages ("Grad-CAM (layer2)")
# share its colour. The twins differ by dash (ResNet solid, plain dashed); the random baseline is grey and dotted.
METHOD_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#000000"]
METHOD_SYMBOLS = [
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "x",
    "cross",
    "star",
    "triangle-down",
    "pentagon",
    "hexagram",
    "hourglass",
    "triangle-left",
    "diamond-wide",
    "triangle-right",
    "hexagon",
    "bowtie",
    "star-square",
    "diamond-tall",
    "star-triangle-up",
    "square-x",
]
RANDOM_COLOR = "#7f7f7f"
RANDOM_LABEL = N_("Random")  # the random baseline's row

# Anchor colours of matplotlib's "inferno" (black -> purple -> orange -> pale yellow): its lightness rises
# monotonically, so a heatmap reads the same in greyscale and for red-green colour blindness.
_ANCHORS = (
    np.array(
        [
            [0, 0, 4],
            [40, 11, 84],
            [101, 21, 110],
            [159, 42, 99],
            [212, 72, 66],
            [245, 125, 21],
            [250, 193, 39],
            [252, 255, 164],
        ],
        dtype=np.float64,
    )
    / 255
)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats in [0, 1] (last axis)."""
    v = np.clip(np.nan_to_num(values), 0, 1) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    t = (v - lo)[..., None]
    return _ANCHORS[lo] * (1 - t) + _ANCHORS[lo + 1] * t


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels on the border of a boolean mask."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def overlay(
    image: Image.Image, heatmap: np.ndarray, *, alpha: float = 0.5, mask: np.ndarray | None = None, min_side: int = 256
) -> Image.Image:
    """Blend a heatmap (H x W in [0, 1], the image's size) over the image.

    Small images (the 32x32 shapes) are enlarged without smoothing so the
    pixels stay honest. A mask, if given, is outlined in white.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    if heatmap.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {rgb.shape[:2]}")
    scale = max(1, int(np.ceil(min_side / min(rgb.shape[:2]))))
    if scale > 1:
        rgb = rgb.repeat(scale, 0).repeat(scale, 1)
        heatmap = heatmap.repeat(scale, 0).repeat(scale, 1)
        mask = mask.repeat(scale, 0).repeat(scale, 1) if mask is not None else None
    out = (1 - alpha) * rgb + alpha * colormap(heatmap)
    if mask is not None:
        edge = _outline(mask)
        for _step in range(max(0, scale // 4)):  # thicken the line on enlarged images
            edge = _outline(edge | np.roll(edge, 1, 0) | np.roll(edge, 1, 1)) | edge
        out[edge] = 1.0
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def topk_figure(exp: Explanation, twin: str, *, highlight: int | None = None) -> go.Figure:
    """Horizontal bars of the top-k probabilities, most likely on top."""
    colors = [COLORS[twin] if highlight is None or int(i) == highlight else "#c7c7c7" for i in exp.indices]
    fig = go.Figure(
        go.Bar(
            x=exp.probs[::-1],
            y=[class_display_name(label) for label in exp.labels[::-1]],
            orientation="h",
            marker_color=colors[::-1],
            text=[f"{p:.1%}" for p in exp.probs[::-1]],
            textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    base_layout(
        fig,
        title=_("{twin}: top-{k}").format(twin=twin_label(twin), k=len(exp.indices)),
        x=_("probability"),
        y="",
        height=260,
    )
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(showlegend=False, margin=dict(l=110, r=20, t=40, b=40))
    return fig


def for_display(heatmap: np.ndarray, *, pixel_method: bool, percentile: float = 99.0) -> np.ndarray:
    """Pixel-level maps are sparse: stretch them so the top percent is full colour (ranking unchanged)."""
    if not pixel_method:
        return heatmap
    top = float(np.percentile(heatmap, percentile))
    return np.clip(heatmap / top, 0, 1) if top > 0 else heatmap


def method_color(name: str) -> str:
    """A method's colour in every curve chart (its stages share it); grey for the random baseline."""
    if name == "Random":
        return RANDOM_COLOR
    names = list(METHODS)
    base = name.split(" (")[0]
    return METHOD_PALETTE[(names.index(base) if base in names else len(names)) % len(METHOD_PALETTE)]


def method_styles(names) -> dict[str, tuple[str, str | None]]:
    """``{name: (colour, marker symbol)}`` for the curves of one chart: the symbols differ from curve to curve
    (up to 20 methods), the random baseline has none."""
    styles, symbols = {}, iter(METHOD_SYMBOLS * (1 + len(names) // len(METHOD_SYMBOLS)))
    for name in dict.fromkeys(names):
        styles[name] = (method_color(name), None if name == "Random" else next(symbols))
    return styles


def _marker(symbol: str | None, color: str) -> dict:
    # At most 8 markers a curve: enough to tell it apart, few enough to keep the curve readable.
    return dict(symbol=symbol, color=color, size=7, maxdisplayed=8) if symbol else dict(size=0)


def _legend(method: str, twin: str) -> str:
    return f"{_(RANDOM_LABEL) if method == 'Random' else method} · {twin_label(twin)}"


def perturbation_figure(rows_by_twin: dict[str, list[dict]], methods: list[str] | None = None) -> go.Figure:
    """Mean deletion and insertion curves (Petsiuk et al. 2018) per method and twin.

    ``rows_by_twin`` maps "resnet"/"plain" to rows of :func:`resnet_viz.evaluate_attributions`;
    ``methods`` picks rows by name (default all). The random baseline is always drawn.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            _("Deletion: most important pixels removed first (lower is better)"),
            _("Insertion: most important pixels revealed first (higher is better)"),
        ),
    )
    shown = [
        row["method"]
        for rows in rows_by_twin.values()
        for row in rows
        if methods is None or row["method"] in methods or row["method"] == "Random"
    ]
    styles = method_styles(shown)
    for twin, rows in rows_by_twin.items():
        for row in rows:
            name = row["method"]
            if name not in styles:
                continue
            color, symbol = styles[name]
            for col, key in ((1, "deletion_curve"), (2, "insertion_curve")):
                curve = row[key]
                xs = np.linspace(0, 1, len(curve))
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=curve,
                        mode="lines+markers" if symbol else "lines",
                        name=_legend(name, twin),
                        legendgroup=f"{name}-{twin}",
                        marker=_marker(symbol, color),
                        showlegend=col == 1,
                        line=dict(
                            color=color,
                            dash="dot" if name == "Random" else DASH[twin],
                            width=2.5 if twin == "resnet" else 2,
                        ),
                        hovertemplate=_("{name}: {p} of pixels, probability {q}").format(
                            name=_legend(name, twin), p="%{x:.0%}", q="%{y:.2f}"
                        )
                        + "<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
    apply_template(fig)
    fig.update_layout(
        height=460, margin=dict(l=60, r=20, t=60, b=60), legend=dict(orientation="h", yanchor="top", y=-0.22, x=0)
    )
    fig.update_xaxes(title_text=_("share of pixels"), tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text=_("probability of the class"), range=[0, 1.02])
    fig.update_annotations(font_size=13)
    return fig


def sanity_figure(curves_by_twin: dict[str, dict[str, dict]], methods: list[str] | None = None) -> go.Figure:
    """Similarity of each method's map to the trained model's map as weights are randomised, head first.

    ``curves_by_twin`` maps "resnet"/"plain" to ``{method: {"layers", "spearman", "ssim"}}``
    (one sanity check, or means over images).
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(_("Rank correlation (Spearman, absolute values)"), _("Structural similarity (SSIM)")),
    )
    styles = method_styles(
        [method for curves in curves_by_twin.values() for method in curves if methods is None or method in methods]
    )
    for twin, curves in curves_by_twin.items():
        for method, curve in curves.items():
            if method not in styles:
                continue
            layers = [_("original") if layer == "original" else layer for layer in curve["layers"]]
            color, symbol = styles[method]
            for col, key in ((1, "spearman"), (2, "ssim")):
                fig.add_trace(
                    go.Scatter(
                        x=layers,
                        y=curve[key],
                        mode="lines+markers",
                        name=_legend(method, twin),
                        legendgroup=f"{method}-{twin}",
                        showlegend=col == 1,
                        marker=dict(symbol=symbol, size=8),
                        line=dict(color=color, dash=DASH[twin]),
                        hovertemplate=_("{name}: randomised down to {layer}, similarity {value}").format(
                            name=_legend(method, twin), layer="%{x}", value="%{y:.2f}"
                        )
                        + "<extra></extra>",
                    ),
                    row=1,
                    col=col,
                )
    apply_template(fig)
    fig.update_layout(
        height=480, margin=dict(l=60, r=20, t=60, b=60), legend=dict(orientation="h", yanchor="top", y=-0.38, x=0)
    )
    fig.update_xaxes(title_text=_("weights randomised from the head down to"))
    fig.update_yaxes(title_text=_("similarity to the original map"), range=[-0.3, 1.05])
    fig.update_annotations(font_size=13)
    return fig
