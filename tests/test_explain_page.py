import os

import pytest
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

from conftest import open_app_page, screenshot
from image_corpus import bad_files, good_files

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def _explain_page() -> AppTest:
    return open_app_page("pages/explain.py", timeout=120)


def _upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at.radio(key="kind-True").set_value("Upload").run()
    at.file_uploader[0].set_value((name, data, mime)).run()
    return at


def test_default_view_explains_a_shapes_sample_with_both_twins():
    at = _explain_page()
    assert [s.value for s in at.subheader][:2] == ["ResNet", "Plain twin"]
    # top-k bars of each twin, the precomputed deletion/insertion curves and sanity curves
    assert len(at.get("plotly_chart")) == 2 + 2
    assert len(at.metric) == 4  # heat on the object and peak, for each twin
    assert "True class" in at.caption[0].value or any("True class" in c.value for c in at.caption)
    assert len(at.get("download_button")) == 2 + 1  # each map's PNG and the evaluation table's CSV
    assert at.multiselect(key="explain-methods").value == ["Grad-CAM"]  # our Grad-CAM stays the default


def test_stage_and_class_controls_rerun_without_errors():
    at = _explain_page()
    at.selectbox(key="explain-stage").set_value("layer1").run()
    assert not at.exception and "at layer1" in at.get("image")[0].captions[0]
    classes = at.selectbox(key="explain-class")
    last = classes.options[-1]
    classes.select_index(len(classes.options) - 1).run()
    assert not at.exception
    assert f"'{last}'" in at.get("image")[0].captions[0]
    at.slider(key="explain-opacity").set_value(0.9).run()
    assert not at.exception


def test_upload_then_hostile_files_then_recovery():
    at = _explain_page()
    name, data, _ = good_files()["jpeg"]
    _upload(at, name, data, "image/jpeg")
    assert not at.exception and len(at.get("plotly_chart")) == 2 + 2
    assert any("eight shapes" in w.value for w in at.warning)
    for name, data in bad_files().values():
        at.file_uploader[0].set_value((name, data, "image/png")).run()
        assert not at.exception, name
        assert at.error and "can't be explained" in at.error[0].value, name
        assert not at.get("plotly_chart"), name
    name, data, _ = good_files()["exif-rotated"]
    at.file_uploader[0].set_value((name, data, "image/jpeg")).run()
    assert not at.exception and not at.error and len(at.get("plotly_chart")) == 2 + 2


@pytest.mark.browser
def test_browser_upload_shows_both_heatmaps(page, app_url):
    page.goto(app_url + "/explain")
    page.locator("[data-testid=stMain]").get_by_text("Upload", exact=True).click()
    photo = os.path.join(os.path.dirname(APP), "resnet_viz", "assets", "samples", "chelsea.png")
    page.locator("[data-testid=stMain] input[type=file]").set_input_files(photo)
    page.get_by_text("Download overlay (PNG)").first.wait_for()
    # Plotly draws asynchronously: wait for both charts rather than sleeping.
    expect(page.locator("[data-testid=stImage] img")).to_have_count(2, timeout=60_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(2 + 2, timeout=60_000)  # top-k bars, faithfulness and sanity curves
    assert page.get_by_text("Plain twin", exact=True).first.is_visible()
    screenshot(page, "explain-upload")
