"""The "Residual vs identity" page: AppTest in-process, and a real browser."""

import os

import pytest
from conftest import chart_titles, open_app_page, screenshot
from streamlit.testing.v1 import AppTest

from resnet_viz.bundled import MODELS_DIR

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = "pages/residual_vs_identity.py"
PROBES = [
    "‖F(x)‖ / ‖x‖ per block",
    "cosine(F(x), x) per block",
    ": |F(x)| relative to the mean |x|, per block",
    "Where the gradient reaching each block's input comes from",
]  # what one input shows
LESIONS = ["Accuracy with one block deleted", "Accuracy against the number of blocks deleted at random"]
PATHS = ["paths through"]
CHARTS = len(PROBES + LESIONS + PATHS)  # the browser waits for them all


def shows(at: AppTest, parts: list[str]) -> bool:
    """True when the page's charts are, in order, the ones whose titles contain ``parts``."""
    titles = chart_titles(at)
    return len(titles) == len(parts) and all(part in title for part, title in zip(parts, titles))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def app():
    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=180)
    at.run()
    at.switch_page(PAGE)
    at.run()
    return at


def test_page_shows_every_chart_and_the_lesion_numbers(app):
    assert not app.exception, app.exception
    assert not app.error
    assert shows(app, PROBES + LESIONS + PATHS)
    assert chart_titles(app)[2].startswith("ResNet:") and "2^9 = 512 paths through 9 blocks" in chart_titles(app)[-1]
    labels = [m.label for m in app.metric]
    assert "ResNet: mean loss, one block deleted" in labels
    assert any("Veit" in md.value for md in app.markdown)


@pytest.mark.parametrize(
    "source, caption", [("batch", "64 test shapes: numbers averaged over the batch"), ("photo", "Sample photo '")]
)
def test_other_inputs_and_the_plain_twins_maps(app, source, caption):
    app.radio(key="residual_source").set_value(source).run()
    app.radio(key="residual_map_twin").set_value("plain").run()
    assert not app.exception, app.exception
    assert shows(app, PROBES + LESIONS + PATHS)
    assert chart_titles(app)[2].startswith("Plain twin:")  # the maps of the twin the radio shows
    assert any(c.value.startswith(caption) for c in app.caption)


def test_upload_without_a_file_asks_for_one(app):
    app.radio(key="residual_source").set_value("upload").run()
    assert not app.exception
    assert any("Upload a PNG" in i.value for i in app.info)
    assert shows(app, LESIONS + PATHS)  # without an input the lesion lab and the paths still show


@pytest.mark.browser
def test_browser_sees_the_charts_and_a_clear_error_for_a_bad_upload(page, app_url):
    # Through the sidebar, so the test holds whatever URL path app.py gives the page.
    page.goto(app_url)
    page.get_by_role("link", name="Residual vs identity").first.click()
    page.get_by_text("Lesion lab").first.wait_for()
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {CHARTS}", timeout=120_000)
    page.get_by_text("Plain / ResNet").first.wait_for()
    # Streamlit scrolls inside its own container: a tall viewport shows the whole page.
    page.set_viewport_size({"width": 1400, "height": 4200})
    page.wait_for_timeout(2000)
    screenshot(page, "residual")
    page.set_viewport_size({"width": 1400, "height": 1000})

    page.locator("p:text-is('Upload'):visible").first.click()  # a stale hidden copy may linger in the DOM
    page.get_by_test_id("stMainBlockContainer").locator("input[type=file]").set_input_files(
        files=[{"name": "not-an-image.png", "mimeType": "image/png", "buffer": b"this is not a PNG"}]
    )
    page.get_by_text("This image cannot be used").first.wait_for()
    assert page.get_by_text("Traceback").count() == 0
    screenshot(page, "residual-bad-upload")


@pytest.mark.skipif(
    not (MODELS_DIR / "shapes-56.safetensors").is_file(),
    reason="shapes-56 is not bundled yet (resnet_viz/assets/models/shapes-56.safetensors)",
)
def test_deep_twins_run_the_lesion_lab_on_request(app):
    app.radio(key="residual_source").set_value("shape").run()
    app.selectbox(key="residual_model").set_value("Bundled shapes-56 (depth 56, trained on shapes)").run()
    assert not app.exception, app.exception
    assert shows(app, PROBES + PATHS)  # everything but the two lesion charts
    assert any(b.label == "Run the lesion lab" for b in app.button)
    assert app.slider(key="residual_paths_n_shapes-56").value == 27


def test_switching_language_keeps_the_chosen_twins():
    at = open_app_page(PAGE, timeout=240)
    at.selectbox(key="residual_model").set_value("Bundled shapes-56 (depth 56, trained on shapes)").run()
    at.radio(key="lang").set_value("zh").run()
    assert not at.exception, at.exception
    box = at.selectbox(key="residual_model")
    assert box.label == "孪生网络" and "shapes-56" in box.value and box.value != box.options[0]
