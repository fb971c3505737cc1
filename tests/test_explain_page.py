import os

import pytest
from conftest import chart_keys, open_app_page, screenshot, warnings
from image_corpus import bad_files, good_files
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

import resnet_viz as rv

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def _explain_page() -> AppTest:
    return open_app_page("pages/explain.py", timeout=120)


FAITHFULNESS = ["curves-precomputed", "sanity-precomputed"]  # the shipped tables' curves, below the maps
TOP_K = ["topk-resnet", "topk-plain"]


def _captions(at: AppTest) -> list[str]:
    return [c for img in at.get("image") for c in img.captions]


def _upload(at: AppTest, name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at.radio(key="kind-True").set_value("Upload").run()
    at.file_uploader[0].set_value((name, data, mime)).run()
    return at


def test_default_view_explains_a_shapes_sample_with_both_twins():
    at = _explain_page()
    assert [s.value for s in at.subheader][:2] == ["ResNet", "Plain twin"]
    assert chart_keys(at) == TOP_K + FAITHFULNESS
    assert [m.label for m in at.metric] == ["Heat on the object", "Peak on the object"] * 2  # for each twin's map
    assert any("True class" in c.value for c in at.caption)
    assert [b.label for b in at.get("download_button")] == ["Download overlay (PNG)"] * 2 + ["Download the table (CSV)"]
    assert at.multiselect(key="explain-methods").value == ["Grad-CAM"]  # our Grad-CAM stays the default
    assert at.selectbox(key="explain-stage").value == "layer3"
    assert all(c.startswith("Grad-CAM for '") and c.endswith("at layer3") for c in _captions(at))
    assert {k: at.query_params[k] for k in ("model", "methods", "stage")} == {
        "model": "shapes-20",
        "methods": "Grad-CAM",
        "stage": "layer3",
    }


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
    assert not at.exception and chart_keys(at) == TOP_K + FAITHFULNESS
    assert any("eight shapes" in w.value for w in at.warning)
    for name, data in bad_files().values():
        at.file_uploader[0].set_value((name, data, "image/png")).run()
        assert not at.exception, name
        assert at.error and "can't be explained" in at.error[0].value, name
        assert not at.get("plotly_chart"), name
    name, data, _ = good_files()["exif-rotated"]
    at.file_uploader[0].set_value((name, data, "image/jpeg")).run()
    assert not at.exception and not at.error and chart_keys(at) == TOP_K + FAITHFULNESS
    assert at.multiselect(key="explain-methods").value == ["Grad-CAM"] and at.query_params["methods"] == "Grad-CAM"


BAD_URL = {"model": "resnet-9000", "methods": "Magic,Saliency", "stage": "layer9"}


@pytest.mark.parametrize(
    "lang, notes",
    [
        (
            "en",
            [
                "Ignored a setting in the URL: `model=resnet-9000` is not valid (choose from shapes-20, shapes-56, "
                "resnet18, resnet50); using `shapes-20`.",
                "Ignored a setting in the URL: `methods=Magic,Saliency` is not valid (choose from "
                f"{', '.join(rv.ATTRIBUTION_METHODS)}); using `Saliency`.",
                "Ignored a setting in the URL: `stage=layer9` is not valid (choose from layer1, layer2, layer3); "
                "using `layer3`.",
            ],
        ),
        (
            "zh",
            [
                "已忽略网址中的一项设置：`model=resnet-9000` 无效（可选：shapes-20, shapes-56, resnet18, resnet50）；"
                "改用 `shapes-20`。",
                f"已忽略网址中的一项设置：`methods=Magic,Saliency` 无效（可选：{', '.join(rv.ATTRIBUTION_METHODS)}）；"
                "改用 `Saliency`。",
                "已忽略网址中的一项设置：`stage=layer9` 无效（可选：layer1, layer2, layer3）；改用 `layer3`。",
            ],
        ),
    ],
)
def test_bad_url_values_are_named_with_the_value_used_instead(lang, notes):
    at = open_app_page("pages/explain.py", {**BAD_URL, "lang": lang}, timeout=120)
    assert warnings(at) == notes
    assert at.selectbox(key="explain-model").value == "shapes-20"
    assert at.multiselect(key="explain-methods").value == ["Saliency"]
    assert at.selectbox(key="explain-stage").value == "layer3"
    assert {k: at.query_params[k] for k in BAD_URL} == {"model": "shapes-20", "methods": "Saliency", "stage": "layer3"}


def test_a_url_with_an_upload_model_or_only_some_keys():
    at = open_app_page("pages/explain.py", {"model": "upload", "stage": "layer1"}, timeout=120)
    assert len(warnings(at)) == 1 and "`model=upload` is not valid" in warnings(at)[0]  # an upload is never shared
    assert at.selectbox(key="explain-stage").value == "layer1"
    assert all(c.endswith("at layer1") for c in _captions(at))
    at.multiselect(key="explain-methods").set_value([]).run()  # an empty box is not a view: Grad-CAM comes back
    assert at.multiselect(key="explain-methods").value == ["Grad-CAM"] and not at.exception


@pytest.mark.browser
def test_browser_upload_shows_both_heatmaps(page, app_url):
    page.goto(app_url + "/explain")
    page.locator("[data-testid=stMain]").get_by_text("Upload", exact=True).click()
    photo = os.path.join(os.path.dirname(APP), "resnet_viz", "assets", "samples", "chelsea.png")
    page.locator("[data-testid=stMain] input[type=file]").set_input_files(photo)
    page.get_by_text("Download overlay (PNG)").first.wait_for()
    # Plotly draws asynchronously: wait for both charts rather than sleeping.
    expect(page.locator("[data-testid=stImage] img")).to_have_count(2, timeout=60_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(
        2 + 2, timeout=60_000
    )  # top-k bars, faithfulness and sanity curves
    assert page.get_by_text("Plain twin", exact=True).first.is_visible()
    screenshot(page, "explain-upload")
