"""Pictures of explanations: heatmap overlays and top-k charts."""
from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from .explain import Explanation
from .style import COLORS, LABELS, base_layout

# Anchor colours of a perceptually ordered dark-blue -> yellow -> red map.
_ANCHORS = np.array([[48, 18, 59], [70, 117, 237], [27, 207, 212], [97, 252, 108], [210, 233, 53],
                     [254, 155, 45], [217, 56, 6], [122, 4, 3]], dtype=np.float64) / 255


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
    base_layout(fig, title=f"{LABELS[twin]}: top-{len(exp.indices)}", x="probability", y="", height=260)
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(showlegend=False, margin=dict(l=110, r=20, t=40, b=40))
    return fig
