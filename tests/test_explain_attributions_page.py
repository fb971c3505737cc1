"""The Explain page's attribution methods, faithfulness table and sanity check (AppTest and the browser)."""

import os

import pytest
from conftest import open_app_page, screenshot
from playwright.sync_api import expect
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz import attribution as A

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def _explain_page() -> AppTest:
    return open_app_page("pages/explain.py", timeout=180)


def _captions(at):
    return [c for img in at.get("image") for c in img.captions]


def test_every_method_in_a_grid_of_methods_by_twins_with_downloads():
    at = _explain_page()
    methods = list(rv.ATTRIBUTION_METHODS)
    at.multiselect(key="explain-methods").set_value(methods).run()
    assert not at.exception and not at.error
    captions = _captions(at)
    assert len(captions) == 2 * len(methods)
    for i, method in enumerate(methods):  # rows = methods, columns = twins
        assert captions[2 * i].startswith(f"{method} for") and captions[2 * i + 1].startswith(f"{method} for")
    assert len(at.metric) == 4 * len(methods)
    downloads = at.get("download_button")
    assert len(downloads) == 2 * len(methods) + 1
    # the faithfulness table lists every method and the random baseline for both twins
    table = at.dataframe[0].value
    shipped = A.load_precomputed(at.selectbox(key="explain-model").value)["twins"]
    assert len(table) == sum(len(shipped[t]["rows"]) for t in ("resnet", "plain"))  # every shipped row
    assert {"Random"} | {m for m in methods if A.METHODS[m].cam is None or m == "Grad-CAM"} <= set(table.iloc[:, 0])
    # switching class and stage keeps every row
    at.selectbox(key="explain-stage").set_value("layer2").run()
    classes = at.selectbox(key="explain-class")
    classes.select_index(len(classes.options) - 1).run()
    assert not at.exception and len(_captions(at)) == 2 * len(methods)
    assert "at layer2" in _captions(at)[0]
    at.toggle(key="explain-smoothgrad").set_value(True).run()
    assert not at.exception and any("(SmoothGrad)" in c for c in _captions(at))


def test_model_methods_and_stage_come_from_the_url_and_follow_the_widgets():
    """A shared link opens the same view; changing it changes the link; bad values get a note, not an error."""
    at = open_app_page(
        "pages/explain.py", {"model": "shapes-56", "methods": "Occlusion,Guided Grad-CAM", "stage": "layer2"}
    )
    assert at.selectbox(key="explain-model").value == "shapes-56"
    assert at.multiselect(key="explain-methods").value == ["Occlusion", "Guided Grad-CAM"]
    assert at.selectbox(key="explain-stage").value == "layer2"
    captions = _captions(at)
    assert len(captions) == 4 and sum("at layer2" in c for c in captions) == 2  # Guided Grad-CAM at the URL's stage
    assert not at.warning
    at.multiselect(key="explain-methods").set_value(["Saliency"]).run()
    at.selectbox(key="explain-stage").set_value("layer1").run()
    assert not at.exception
    assert at.query_params["methods"] in ("Saliency", ["Saliency"])
    assert at.query_params["stage"] in ("layer1", ["layer1"])
    assert at.query_params["model"] in ("shapes-56", ["shapes-56"])
    assert at.multiselect(key="explain-methods").value == ["Saliency"]  # the widgets win over the old link

    bad = open_app_page("pages/explain.py", {"model": "resnet-9000", "methods": "Magic,Saliency", "stage": "layer9"})
    notes = " ".join(w.value for w in bad.warning)
    assert "model=resnet-9000" in notes and "methods=Magic,Saliency" in notes and "stage=layer9" in notes
    assert bad.multiselect(key="explain-methods").value == ["Saliency"]
    assert bad.selectbox(key="explain-stage").value == bad.selectbox(key="explain-stage").options[-1]
    assert len(_captions(bad)) == 2 and not bad.error


def test_sanity_check_and_live_measurement_on_this_image():
    at = _explain_page()
    at.multiselect(key="explain-methods").set_value(["Grad-CAM", "Guided Backprop"]).run()
    # the shipped curves' verdict, one line per method and twin
    verdicts = [
        line
        for md in at.markdown
        for line in md.value.splitlines()
        if line.startswith("- ") and "once every layer is" in line
    ]
    assert len(verdicts) == 4
    assert all("**fails**" in v for v in verdicts if v.startswith("- Guided Backprop,"))
    assert all("**passes**" in v for v in verdicts if v.startswith("- Grad-CAM,"))
    at.button(key="explain-sanity").click().run()
    assert not at.exception
    # strip: original + head + 9 blocks + stem for each method and twin, below the maps
    captions = _captions(at)
    strips = [c for c in captions if " · ρ " in c]
    assert len(strips) == 2 * 2 * 12 and strips[0].startswith("original · ρ 1.00")
    assert len(at.get("plotly_chart")) == 2 + 2 + 1
    at.button(key="explain-evaluate").click().run()
    assert not at.exception
    assert len(at.dataframe) == 2
    live = at.dataframe[1].value
    assert list(live.iloc[:, 0]) == ["Grad-CAM", "Guided Backprop", "Random"] * 2
    assert (live.iloc[:, 2] == 1).all()  # one image


@pytest.mark.browser
def test_browser_several_methods_and_the_sanity_check(page, app_url):
    page.goto(app_url + "/explain")
    main = page.locator("[data-testid=stMain]")
    main.get_by_text("Grad-CAM for", exact=False).first.wait_for()
    select = main.locator("[data-testid=stMultiSelect]").first
    for method in ("Occlusion", "Guided Backprop"):
        select.locator("input").first.click()
        page.keyboard.type(method)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        expect(main.locator("[data-testid=stImageCaption]").filter(has_text=f"{method} for")).to_have_count(
            2, timeout=60_000
        )
    expect(main.get_by_text("Download overlay (PNG)")).to_have_count(6)
    expect(main.get_by_text("Download the table (CSV)")).to_be_visible()
    main.get_by_role("button", name="Run the sanity check on this image").click()
    expect(main.locator("[data-testid=stImageCaption]").filter(has_text="original · ρ 1.00")).to_have_count(
        6, timeout=120_000
    )
    expect(page.locator(".js-plotly-plot")).to_have_count(5, timeout=60_000)
    screenshot(page, "explain-attributions")


@pytest.mark.slow
def test_uploaded_checkpoint_gets_every_method_and_a_live_evaluation():
    at = _explain_page()
    at.multiselect(key="explain-methods").set_value(list(rv.ATTRIBUTION_METHODS)).run()
    path = os.path.join(os.path.dirname(APP), "resnet_viz", "assets", "models", "shapes-20.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    uploader = next(u for u in at.get("file_uploader") if u.key == "checkpoint")
    uploader.set_value(("mine.safetensors", data, "application/octet-stream")).run()
    assert not at.exception
    models = at.selectbox(key="explain-model")
    label = models.options[-1]
    assert label.startswith("Your checkpoint")
    models.select_index(len(models.options) - 1).run()
    assert not at.exception and not at.error
    assert len(_captions(at)) == 2 * len(rv.ATTRIBUTION_METHODS)
    assert not at.dataframe  # nothing precomputed for an upload
    # AppTest can't map the selectbox's value back through format_func: give it the label again
    at.selectbox(key="explain-model").set_value(label)
    at.multiselect(key="explain-methods").set_value(["Grad-CAM", "Occlusion"])
    at.selectbox(key="explain-model").set_value(label)
    at.button(key="explain-evaluate").click().run()  # a shapes checkpoint: measured on shapes test images
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table.iloc[:, 0]) == ["Grad-CAM", "Occlusion", "Random"] * 2
    assert (table.iloc[:, 2] == 24).all()
    peak = table.iloc[:, 3]
    assert (peak.iloc[[0, 1]] > peak.iloc[2]).all()  # both beat the random map on the ResNet


def test_cam_methods_come_from_the_url_and_a_stopped_score_cam_waits_to_be_asked():
    at = open_app_page("pages/explain.py", {"methods": "HiResCAM,Score-CAM", "stage": "layer2"})
    assert at.multiselect(key="explain-methods").value == ["HiResCAM", "Score-CAM"]
    captions = _captions(at)
    assert len(captions) == 4 and captions[0].startswith("HiResCAM for") and captions[2].startswith("Score-CAM for")
    assert all("at layer2" in c for c in captions)
    at.session_state["explain-cams-stop"] = True  # as in the run that a click on Stop starts
    at.run()
    assert not at.exception and len(_captions(at)) == 2 and "Score-CAM" in at.info[0].value
    at.button(key="explain-cams-resume").click().run()
    assert not at.exception and len(_captions(at)) == 4


def test_a_method_missing_from_the_shipped_table_is_named_with_the_command_that_adds_it(tmp_path, monkeypatch):
    import json

    import streamlit as st

    from resnet_viz.attribution import tables

    table = A.load_precomputed("shapes-56")
    missing = "LayerCAM"  # a table written before the method existed: no row for it on the ResNet
    table["twins"]["resnet"]["rows"] = [r for r in table["twins"]["resnet"]["rows"] if r["method"] != missing]
    (tmp_path / "shapes-56.json").write_text(json.dumps(table))
    monkeypatch.setattr(tables, "PRECOMPUTED_DIR", tmp_path)
    st.cache_data.clear()  # the page caches the table it read
    try:
        at = open_app_page("pages/explain.py", {"model": "shapes-56", "methods": f"Grad-CAM,{missing}"})
    finally:
        st.cache_data.clear()
    notices = [i.value for i in at.info if "The shipped table has no row" in i.value]
    assert len(notices) == 1 and missing in notices[0] and "Grad-CAM," not in notices[0]  # the plain twin has it
    assert f"attributions shapes-56 --twins resnet --methods {missing}" in notices[0]
