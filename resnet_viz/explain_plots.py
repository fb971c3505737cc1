"""Pictures of explanations: heatmap overlays, top-k charts, sanity-check and deletion/insertion curves."""
from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from PIL import Image

from .explain import Explanation
from .i18n import N_, _
from .models import twin_label
from .style import COLORS, DASH, apply_template, base_layout

# One colour per attribution method in curve charts; the twins differ by dash (ResNet solid, plain dashed).
METHOD_COLORS = {"Grad-CAM": "#1f77b4", "Saliency": "#2ca02c", "Integrated Gradients": "#9467bd",
                 "Gradient SHAP": "#8c564b", "DeepLift": "#e377c2", "Guided Backprop": "#d62728",
                 "Guided Grad-CAM": "#bcbd22", "Occlusion": "#17becf", "Random": "#7f7f7f"}
RANDOM_LABEL = N_("Random")  # the random baseline's row

# Anchor colours of matplotlib's "inferno" (black -> purple -> orange -> pale yellow): its lightness rises
# monotonically, so a heatmap reads the same in greyscale and for red-green colour blindness.
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                     [250, 193, 39], [252, 255, 164]], dtype=np.float64) / 255


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


def overlay(image: Image.Image, heatmap: np.ndarray, *, alpha: float = 0.5, mask: np.ndarray | None = None,
            min_side: int = 256) -> Image.Image:
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
        for _ in range(max(0, scale // 4)):  # thicken the line on enlarged images
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
    fig = go.Figure(go.Bar(x=exp.probs[::-1], y=exp.labels[::-1], orientation="h", marker_color=colors[::-1],
                           text=[f"{p:.1%}" for p in exp.probs[::-1]], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    base_layout(fig, title=_("{twin}: top-{k}").format(twin=twin_label(twin), k=len(exp.indices)),
                x=_("probability"), y="", height=260)
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(showlegend=False, margin=dict(l=110, r=20, t=40, b=40))
    return fig


def for_display(heatmap: np.ndarray, *, pixel_method: bool, percentile: float = 99.0) -> np.ndarray:
    """Pixel-level maps are sparse: stretch them so the top percent is full colour (ranking unchanged)."""
    if not pixel_method:
        return heatmap
    top = float(np.percentile(heatmap, percentile))
    return np.clip(heatmap / top, 0, 1) if top > 0 else heatmap


def _method_color(name: str) -> str:
    return METHOD_COLORS.get(name, METHOD_COLORS.get(name.split(" (")[0], "#444444"))


def _legend(method: str, twin: str) -> str:
    return f"{_(RANDOM_LABEL) if method == 'Random' else method} · {twin_label(twin)}"


def perturbation_figure(rows_by_twin: dict[str, list[dict]], methods: list[str] | None = None) -> go.Figure:
    """Mean deletion and insertion curves (Petsiuk et al. 2018) per method and twin.

    ``rows_by_twin`` maps "resnet"/"plain" to rows of :func:`resnet_viz.evaluate_attributions`;
    ``methods`` picks rows by name (default all). The random baseline is always drawn.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("Deletion: most important pixels removed first (lower is better)"),
                                                        _("Insertion: most important pixels revealed first (higher is better)")))
    for twin, rows in rows_by_twin.items():
        for row in rows:
            name = row["method"]
            if methods is not None and name not in methods and name != "Random":
                continue
            color = _method_color(name)
            for col, key in ((1, "deletion_curve"), (2, "insertion_curve")):
                curve = row[key]
                xs = np.linspace(0, 1, len(curve))
                fig.add_trace(go.Scatter(
                    x=xs, y=curve, mode="lines", name=_legend(name, twin), legendgroup=f"{name}-{twin}",
                    showlegend=col == 1, line=dict(color=color, dash="dot" if name == "Random" else DASH[twin],
                                                   width=2.5 if twin == "resnet" else 2),
                    hovertemplate=_("{name}: {p} of pixels, probability {q}").format(
                        name=_legend(name, twin), p="%{x:.0%}", q="%{y:.2f}") + "<extra></extra>"), row=1, col=col)
    apply_template(fig)
    fig.update_layout(height=460, margin=dict(l=60, r=20, t=60, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.22, x=0))
    fig.update_xaxes(title_text=_("share of pixels"), tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text=_("probability of the class"), range=[0, 1.02])
    fig.update_annotations(font_size=13)
    return fig


def sanity_figure(curves_by_twin: dict[str, dict[str, dict]], methods: list[str] | None = None) -> go.Figure:
    """Similarity of each method's map to the trained model's map as weights are randomised, head first.

    ``curves_by_twin`` maps "resnet"/"plain" to ``{method: {"layers", "spearman", "ssim"}}``
    (one sanity check, or means over images).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("Rank correlation (Spearman, absolute values)"),
                                                        _("Structural similarity (SSIM)")))
    for twin, curves in curves_by_twin.items():
        for method, curve in curves.items():
            if methods is not None and method not in methods:
                continue
            layers = [_("original") if layer == "original" else layer for layer in curve["layers"]]
            for col, key in ((1, "spearman"), (2, "ssim")):
                fig.add_trace(go.Scatter(
                    x=layers, y=curve[key], mode="lines+markers", name=_legend(method, twin),
                    legendgroup=f"{method}-{twin}", showlegend=col == 1,
                    line=dict(color=_method_color(method), dash=DASH[twin]),
                    hovertemplate=_("{name}: randomised down to {layer}, similarity {value}").format(
                        name=_legend(method, twin), layer="%{x}", value="%{y:.2f}") + "<extra></extra>"), row=1, col=col)
    apply_template(fig)
    fig.update_layout(height=480, margin=dict(l=60, r=20, t=60, b=60),
                      legend=dict(orientation="h", yanchor="top", y=-0.38, x=0))
    fig.update_xaxes(title_text=_("weights randomised from the head down to"))
    fig.update_yaxes(title_text=_("similarity to the original map"), range=[-0.3, 1.05])
    fig.update_annotations(font_size=13)
    return fig
