"""The Shattered gradients page: default view, the view in the URL, bad URL values, the trained twins."""

import pytest
from conftest import chart_keys, chart_titles, open_app_page, warnings

from resnet_viz import shattered as sh

PAGE = "pages/shattered_gradients.py"


@pytest.fixture(autouse=True)
def small_sweeps(monkeypatch):
    monkeypatch.setattr(sh, "FC_SWEEP_DEPTHS", (1, 4, 8))
    monkeypatch.setattr(sh, "CIFAR_SWEEP_DEPTHS", (8, 14))


def url_view(at) -> dict:
    return {k: v for k, v in at.query_params.items() if k != "lang"}


@pytest.mark.slow
def test_default_view_shows_the_paper_nets_the_twins_and_the_sweep(one_thread):
    at = open_app_page(PAGE, {"depth": "20"})
    keys = chart_keys(at)
    assert keys == ["sg-paper-lines", "sg-paper-acf", "sg-conv-lines", "sg-conv-acf", "sg-sweep"]
    titles = chart_titles(at)
    assert titles[0].startswith("f′(x) on 256 inputs") and "20 layers" in titles[2]
    assert url_view(at) == {
        "paper_norm": "batch",
        "twins": "init",
        "depth": "20",
        "init": "kaiming",
        "seed": "0",
        "sweep": "paper",
    }
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["24-layer plain net: lag-1 autocorrelation"]) < 0.3
    assert len(at.get("download_button")) == 3
    assert not warnings(at)


@pytest.mark.slow
def test_url_opens_the_trained_twins_without_a_sweep_and_reports_bad_values(one_thread):
    at = open_app_page(PAGE, {"twins": "shapes-20", "sweep": "off", "depth": "57", "paper_norm": "none"})
    assert chart_keys(at) == ["sg-paper-lines", "sg-paper-acf", "sg-conv-lines", "sg-conv-acf"]
    assert "without normalisation" in chart_titles(at)[0]
    assert any("depth=57" in w for w in warnings(at)) or any("depth=57" in m.value for m in at.markdown)
    assert url_view(at)["depth"] == "56" and url_view(at)["twins"] == "shapes-20"


@pytest.mark.slow
def test_chinese_page(one_thread):
    at = open_app_page(PAGE, {"lang": "zh", "sweep": "off", "depth": "8"})
    assert at.title[0].value == "梯度破碎"
    assert not at.exception


@pytest.mark.browser
@pytest.mark.parametrize(
    "lang, title, twins",
    [("en", "Shattered gradients", "The app's convolutional twins"), ("zh", "梯度破碎", "本应用的卷积孪生网络")],
)
def test_page_in_a_browser(page, app_url, lang, title, twins):
    """The page in both languages draws the paper's nets and the twins (depth 8, no sweep: quick on a busy server)."""
    from conftest import screenshot

    page.goto(app_url + f"/shattered_gradients?lang={lang}&depth=8&sweep=off")
    page.get_by_role("heading", name=title).first.wait_for()
    heading = page.get_by_role("heading", name=twins)
    heading.wait_for(timeout=300_000)
    heading.scroll_into_view_if_needed()
    page.locator("[data-testid=stMain] .js-plotly-plot").nth(3).wait_for(timeout=300_000)
    page.wait_for_function("location.search.includes('twins=init')")
    screenshot(page, f"shattered-{lang}")
