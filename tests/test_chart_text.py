"""Text alternatives are written from each chart's own numbers."""

import numpy as np
import plotly.graph_objects as go

from resnet_viz.chart_text import describe, format_number, heatmap_text
from resnet_viz.i18n import language


def test_a_line_chart_is_described_by_its_first_last_lowest_and_highest_values():
    rng = np.random.default_rng(4)
    y = rng.uniform(1e-5, 1.0, 12)
    fig = go.Figure(go.Scatter(x=list(range(12)), y=y, name="Plain-56"))
    fig.update_layout(title="Gradient norm per layer")
    text = describe(fig)
    assert text.startswith("Chart: Gradient norm per layer.")
    for value, at in ((y[0], 0), (y[-1], 11), (y.min(), int(y.argmin())), (y.max(), int(y.argmax()))):
        assert f"{format_number(float(value))} at {at}" in text


def test_a_surface_is_described_by_where_it_is_lowest_and_highest():
    z = np.arange(12, dtype=float).reshape(3, 4) ** 2 - 5
    fig = go.Figure(go.Heatmap(z=z, x=[10, 20, 30, 40], y=[1, 2, 3], name="ResNet"))
    assert "ResNet: values from -5 at (10, 1) to 116 at (40, 3)." in describe(fig)
    with language("zh"):
        assert describe(fig).startswith("图表。")


def test_format_number_writes_small_and_large_numbers_with_powers_of_ten():
    assert format_number(4.2e-4) == "4.2×10⁻⁴"
    assert format_number(0.3) == "0.3"
    assert format_number(2.5e6) == "2.5×10⁶"


def test_a_heatmap_image_is_described_by_its_peak_and_the_area_holding_half_its_heat():
    heat = np.zeros((30, 30))
    heat[25:28, 1:4] = 1.0  # 9 pixels in the bottom left
    text = heatmap_text(heat)
    assert "bottom left" in text and f"{5 / 900:.0%}" in text
    assert "empty" in heatmap_text(np.zeros((4, 4)))
