"""The "Inside a block" page: AppTest in-process, and a real browser."""

import json
import re

import pytest
from conftest import chart_titles, open_app_page, screenshot, wait_for_idle

import resnet_viz as rv
from resnet_viz.data import TEST_SEED, shape_class_name
from resnet_viz.i18n import _, language
from resnet_viz.inside_plots import channels_by_energy

PAGE = "pages/inside_a_block.py"
GRIDS = ["x, the block's input", "F(x), the branch (before the ReLU)", "y, the block's output"]
EVIDENCE = ["the class evidence at each block's sum, by path", "How much of the class evidence travels along the skip"]
CHARTS = 2 * len(GRIDS) + len(EVIDENCE)

pytestmark = pytest.mark.usefixtures("one_thread")


def grid_channels(at) -> list[list[str]]:
    """The channel labels ("#3") of each channel grid the run drew, in page order."""
    out = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["data"][0].get("type") == "heatmap":
            out.append([a["text"] for a in spec["layout"].get("annotations", [])])
    return out


@pytest.fixture(scope="module")
def app():
    return open_app_page(PAGE)


def test_first_view_shows_both_twins_maps_and_the_evidence(app):
    assert not app.error, [e.value for e in app.error]
    titles = chart_titles(app)
    assert len(titles) == CHARTS
    for twin_titles, twin in ((titles[:3], "ResNet"), (titles[3:6], "Plain twin")):
        assert [t.startswith(f"{twin}, layer1.1: ") for t in twin_titles] == [True] * 3
        assert all(part in t for part, t in zip(GRIDS, twin_titles))
    assert all(part in t for part, t in zip(EVIDENCE, titles[6:]))
    assert {k: app.query_params[k] for k in ("model", "input", "image", "block", "twin", "channel")} == {
        "model": "shapes-20",
        "input": "shape",
        "image": "3",
        "block": "layer1.1",
        "twin": "resnet",
        "channel": "0",
    }
    assert all(c.value for c in app.caption)  # every chart has its text alternative under it


def test_the_grids_show_the_strongest_channels_of_the_block_first(app):
    resnet, plain, _info = rv.load_bundled("shapes-20")
    x = rv.make_shapes(200, seed=TEST_SEED)[0][3:4]
    grids = grid_channels(app)
    for net, offset in ((resnet, 0), (plain, 3)):
        maps = rv.block_maps(net, x, "layer1.1")
        for k, tensor in enumerate((maps.input, maps.branch, maps.output)):
            assert grids[offset + k] == [f"#{c}" for c in channels_by_energy(tensor)[:16]]


def test_the_depth_sentence_states_the_measured_shares(app):
    images = rv.make_shapes(64, seed=TEST_SEED)[0]
    text = next(md.value for md in app.markdown if md.value.startswith("Over 64 shapes test images"))
    for label, name in (("ResNet-20", "shapes-20"), ("ResNet-56", "shapes-56")):
        split = rv.evidence_split(rv.load_bundled(name)[0], images)
        assert f"{label}: the median block sends **{split.overall_median_share():.0%}**" in text
        branchy = [b for b, v in split.median_identity_share().items() if v < 0.5]
        if branchy:
            assert ", ".join(branchy) in text
    assert "ResNet-20, the branch carries more than the skip in 3 of 9 blocks: layer3.0, layer3.1, layer3.2" in text


def test_the_examples_are_the_top_test_images_of_the_channel(app):
    app.selectbox(key="inside_channel").set_value(5).run()
    assert not app.exception
    images, labels, _masks = rv.make_shapes(500, seed=TEST_SEED)
    examples = rv.dataset_examples(rv.load_bundled("shapes-20")[0], images, ["layer1.1"])
    indices, values = examples.top("layer1.1", 5, 8)
    assert app.get("image")[-1].captions == [
        f"{shape_class_name(int(labels[i]))}: {v:.2f}" for i, v in zip(indices, values)
    ]
    assert app.query_params["channel"] == "5"


def test_a_link_opens_its_view_and_a_bad_value_says_so():
    at = open_app_page(PAGE, {"model": "shapes-56", "block": "layer3.4", "twin": "plain", "channel": "70"})
    assert chart_titles(at)[0] == "ResNet, layer3.4: x, the block's input"
    assert at.radio(key="inside_twin").value == "plain"
    assert any("`channel=70` is not valid" in w.value for w in at.warning)
    assert at.query_params["channel"] == "0"


def test_chinese_presenter_view_and_no_image_yet():
    at = open_app_page(PAGE, {"lang": "zh", "present": "1", "input": "upload"})
    with language("zh"):
        assert at.title[0].value == _("Inside a block")
    assert any(i.value for i in at.info)  # asks for a file
    titles = chart_titles(at)
    assert len(titles) == 1 and re.search("[\u4e00-\u9fff]", titles[0])  # the depth chart, in Chinese
    with language("zh"):  # AppTest formats the widgets' options in the test's thread
        at.radio(key="inside_input").set_value("photo").run()
    assert not at.exception
    assert all(len(g) == 8 for g in grid_channels(at))  # presenter mode: 8 larger tiles per grid


def test_the_lesion_lab_links_here():
    at = open_app_page("pages/residual_vs_identity.py")
    assert any(link.proto.page == "inside_a_block" for link in at.get("page_link"))


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_browser_shows_the_page(page, app_url, lang):
    page.set_viewport_size({"width": 1400, "height": 3600})
    page.goto(f"{app_url}/inside_a_block?lang={lang}")
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {CHARTS}", timeout=180_000)
    wait_for_idle(page)
    assert page.locator("[data-testid=stException]").count() == 0
    screenshot(page, f"inside-a-block-{lang}")


def test_the_camera_asks_for_a_picture_and_the_url_keeps_the_choice():
    at = open_app_page(PAGE, {"input": "camera", "model": "shapes-56"})
    assert at.radio(key="inside_input").value == "camera"
    assert any("Take a photo" in i.value for i in at.info)
    assert not at.error and at.query_params["input"] == "camera"
    assert len(chart_titles(at)) == 1  # without a picture, only the depth chart
