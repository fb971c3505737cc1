"""The Loss landscape page: shipped surfaces at once, the view in the URL, bad URLs, live recomputation."""

import pytest
from conftest import chart_keys, open_app_page, screenshot, warnings
from streamlit.testing.v1 import AppTest

PAGE = "pages/loss_landscape.py"


def open_page(query_params: dict | None = None):
    return open_app_page(PAGE, query_params, timeout=240)


def url_view(at: AppTest) -> dict:
    return {k: at.query_params[k] for k in ("model", "view")}


def widget_view(at: AppTest) -> dict:
    return {"model": at.radio(key="ll_model").value, "view": at.radio(key="ll_view").value}


def test_opens_with_the_shipped_surfaces_and_writes_the_view_to_the_url():
    at = open_page()
    assert chart_keys(at) == ["ll-contour"]
    assert at.query_params["model"] == "shapes-56" and at.query_params["view"] == "contour"
    labels = {m.label for m in at.metric}
    assert {"ResNet: non-convex points", "Plain twin: non-convex points"} <= labels
    assert any("Shipped surfaces: 21×21 grid" in c.value for c in at.caption)
    assert any("What the paper concluded" in m.value for m in at.markdown)
    at.radio(key="ll_view").set_value("3d").run()
    assert not at.exception and at.query_params["view"] == "3d"
    at.radio(key="ll_model").set_value("shapes-20").run()
    assert not at.exception and at.query_params["model"] == "shapes-20"
    for view in ("slices", "convexity", "path"):
        at.radio(key="ll_view").set_value(view).run()
        assert not at.exception and at.query_params["view"] == view
        assert chart_keys(at) == (["ll-slices", "ll-lines"] if view == "slices" else [f"ll-{view}"])
        assert widget_view(at) == url_view(at) == {"model": "shapes-20", "view": view}


def test_a_link_opens_its_view_and_keeps_other_keys():
    at = open_page({"model": "shapes-20", "view": "path", "lang": "en"})
    assert at.radio(key="ll_model").value == "shapes-20" and at.radio(key="ll_view").value == "path"
    assert at.query_params["lang"] == "en"  # not ours: left alone
    assert any("principal directions" in m.value for m in at.markdown)


def test_the_lessons_link_opens_the_contour_of_its_twins():
    at = open_page({"model": "shapes-56"})  # resnet_viz.teaching's loss landscape step links here
    assert not at.warning and widget_view(at) == url_view(at) == {"model": "shapes-56", "view": "contour"}
    assert chart_keys(at) == ["ll-contour"]


def test_bad_url_values_give_a_clear_message_and_the_defaults():
    at = open_page({"model": "resnet-9000", "view": "<script>" + "x" * 60})
    assert warnings(at) == [
        "Ignored a setting in the URL: `model=resnet-9000` is not valid (choose from shapes-20, shapes-56); "
        "using `shapes-56`.",
        "Ignored a setting in the URL: `view=<script>" + "x" * 32 + "` is not valid (choose from contour, 3d, "
        "slices, convexity, path); using `contour`.",
    ]  # a long value is cut to 40 characters
    assert widget_view(at) == url_view(at) == {"model": "shapes-56", "view": "contour"}
    assert chart_keys(at) == ["ll-contour"]


def test_bad_url_values_are_explained_in_chinese():
    at = open_page({"model": "shapes-20", "view": "4d", "lang": "zh"})
    assert warnings(at) == [
        "已忽略网址中的一项设置：`view=4d` 无效（可选：contour, 3d, slices, convexity, path）；改用 `contour`。"
    ]
    assert widget_view(at) == {"model": "shapes-20", "view": "contour"} and at.radio(key="ll_view").label == "视图"


@pytest.mark.slow
def test_live_recomputation_replaces_the_shipped_surfaces(one_thread):
    at = open_page({"model": "shapes-20"})
    at.selectbox(key="ll_steps").set_value(11)
    at.selectbox(key="ll_images").set_value(32)
    at.number_input(key="ll_seed").set_value(5)
    at.button(key="ll_compute").click().run()
    assert not at.exception, at.exception
    assert any(
        "Your computation: 11×11 grid" in c.value and "seed 5, 32 training images" in c.value for c in at.caption
    )
    at.button(key="ll_back").click().run()
    assert any("Shipped surfaces: 21×21" in c.value for c in at.caption)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_view_in_the_url_and_stop(page, app_url):
    page.goto(f"{app_url}/loss_landscape?model=shapes-20&view=contour")
    page.get_by_text("non-convex points").first.wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, "loss-landscape-contour")
    page.get_by_text("3-D surface").click()
    page.wait_for_url("**view=3d**")
    assert "model=shapes-20" in page.url
    # The 3-D chart itself, not the contour of the run before: clicks during a rerun can be lost.
    page.locator(".st-key-ll-3d .js-plotly-plot").wait_for()
    page.get_by_text("Recompute live", exact=True).click()
    page.get_by_role("button", name="Compute", exact=True).click()
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for()
    page.get_by_text("Grid point").first.wait_for()
    stop.click()
    page.get_by_text("Stopped. Nothing was changed").wait_for()
    screenshot(page, "loss-landscape-stopped")
    assert page.get_by_text("Your computation").count() == 0
