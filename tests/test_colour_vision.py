"""Charts stay readable without full colour vision: heatmap lightness keeps its order, curves differ by symbol."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from resnet_viz.attribution.methods import METHODS
from resnet_viz.explain_plots import colormap, method_styles, perturbation_figure

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from colour_vision import KINDS, simulate  # noqa: E402

LUMA = np.array([0.2126, 0.7152, 0.0722])


def _seen(rgb: np.ndarray, kind: str) -> np.ndarray:
    image = Image.fromarray(np.round(rgb * 255).astype(np.uint8)[None])
    return np.asarray(simulate(image, kind), dtype=np.float64)[0] / 255


def test_the_simulation_confuses_red_and_green_for_deuteranopes_and_keeps_white_and_grey():
    red_green = np.array([[0.8, 0.2, 0.1], [0.3, 0.6, 0.1]])
    seen = _seen(red_green, "deuteranopia")
    assert np.abs(seen[0] - seen[1]).sum() < 0.5 * np.abs(red_green[0] - red_green[1]).sum()
    for kind in KINDS:
        assert np.allclose(
            _seen(np.array([[1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]), kind), [[1, 1, 1], [0.5, 0.5, 0.5]], atol=0.02
        )
    grey = _seen(red_green, "greyscale")
    assert np.allclose(grey[:, 0], grey[:, 1]) and np.allclose(grey[:, 1], grey[:, 2])
    with pytest.raises(ValueError):
        simulate(Image.new("RGB", (1, 1)), "monochromacy")


@pytest.mark.parametrize("kind", KINDS)
def test_the_heatmap_scale_gets_lighter_from_cold_to_hot_for_every_kind_of_vision(kind):
    """Explain's heatmaps (and the page's claim): the hotter, the lighter, also as a dichromat or in greyscale."""
    values = np.linspace(0, 1, 101)
    lightness = _seen(colormap(values), kind) @ LUMA
    assert np.all(np.diff(lightness) > -0.004), np.diff(lightness).min()  # rounding to 8 bits allowed
    assert lightness[-1] - lightness[0] > 0.8


def test_every_curve_of_a_chart_has_its_own_symbol_and_each_method_one_colour():
    """Curves are told apart by symbol, not by colour alone; the twins of one method share its symbol."""
    names = [
        "Grad-CAM",
        "Grad-CAM (layer2)",
        "Grad-CAM (layer1)",
        "Saliency",
        "Guided Backprop",
        "Score-CAM",
        "Integrated Gradients",
        "Occlusion",
        "LayerCAM",
    ]
    curve = {"deletion_curve": [1.0, 0.5, 0.1], "insertion_curve": [0.1, 0.5, 1.0]}
    rows = {twin: [{"method": name, **curve} for name in names + ["Random"]] for twin in ("resnet", "plain")}
    fig = perturbation_figure(rows)
    symbol_of, color_of = {}, {}
    for trace in fig.data:
        method = trace.legendgroup.rsplit("-", 1)[0]
        symbol = trace.marker.symbol if "markers" in trace.mode else None
        assert symbol_of.setdefault(method, symbol) == symbol  # both twins, both panels
        assert color_of.setdefault(method, trace.line.color) == trace.line.color
    assert set(symbol_of) == set(names) | {"Random"}
    assert symbol_of["Random"] is None and len({symbol_of[n] for n in names}) == len(names)
    assert color_of["Grad-CAM"] == color_of["Grad-CAM (layer2)"]  # one method, one colour; stages by symbol
    assert len({color_of[n] for n in ("Grad-CAM", "Saliency", "Guided Backprop", "Integrated Gradients")}) == 4
    styles = method_styles(list(METHODS))
    assert len({symbol for _color, symbol in styles.values()}) == len(METHODS)
