"""The Loss landscape page: shipped surfaces at once, the view in the URL, bad URLs, live recomputation."""
import pytest
from streamlit.testing.v1 import AppTest

from conftest import open_app_page, screenshot

PAGE = "pages/loss_landscape.py"


def open_page(query_params: dict | None = None):
    return open_app_page(PAGE, query_params, timeout=240)


def charts(at: AppTest):
    return at.get("plotly_chart")


def test_opens_with_the_shipped_surfaces_and_writes_the_view_to_the_url():
    at = open_page()
    assert len(charts(at)) == 1
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
        assert len(charts(at)) == (2 if view == "slices" else 1)


def test_a_link_opens_its_view_and_keeps_other_keys():
    at = open_page({"model": "shapes-20", "view": "path", "lang": "en"})
    assert at.radio(key="ll_model").value == "shapes-20" and at.radio(key="ll_view").value == "path"
    assert at.query_params["lang"] == "en"  # not ours: left alone
    assert any("principal directions" in m.value for m in at.markdown)


def test_bad_url_values_give_a_clear_message_and_the_defaults():
    at = open_page({"model": "resnet-9000", "view": "<script>"})
    warnings = " ".join(w.value for w in at.warning)
    assert "`model=resnet-9000` is not valid" in warnings and "`view=<script>` is not valid" in warnings
    assert at.radio(key="ll_model").value == "shapes-56" and at.radio(key="ll_view").value == "contour"
    assert at.query_params["model"] == "shapes-56"
    assert len(charts(at)) == 1


@pytest.mark.slow
def test_live_recomputation_replaces_the_shipped_surfaces(one_thread):
    at = open_page({"model": "shapes-20"})
    at.selectbox(key="ll_steps").set_value(11)
    at.selectbox(key="ll_images").set_value(32)
    at.number_input(key="ll_seed").set_value(5)
    at.button(key="ll_compute").click().run()
    assert not at.exception, at.exception
    assert any("Your computation: 11×11 grid" in c.value and "seed 5, 32 training images" in c.value
               for c in at.caption)
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
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_text("Recompute live").click()
    page.get_by_role("button", name="Compute").click()
    stop = page.get_by_role("button", name="Stop")
    stop.wait_for()
    page.get_by_text("Grid point").first.wait_for()
    stop.click()
    page.get_by_text("Stopped. Nothing was changed").wait_for()
    screenshot(page, "loss-landscape-stopped")
    assert page.get_by_text("Your computation").count() == 0
