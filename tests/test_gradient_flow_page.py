import pytest
from conftest import chart_titles, open_app_page, screenshot, warnings
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz.teaching import preset_view

PAGE = "pages/gradient_flow.py"
NORMS, SIGNALS, SWEEP = (
    "Gradient norm per layer",
    "Forward signal: standard deviation of each block's output",
    "First/last gradient ratio against depth",
)


@pytest.fixture(autouse=True)
def short_sweep(monkeypatch):
    # The page reads the sweep's depths at run time; two depths keep the AppTests fast.
    monkeypatch.setattr(rv.gradients, "SWEEP_DEPTHS", (8, 14))


def open_page(query_params: dict | None = None):
    return open_app_page(PAGE, query_params, timeout=180)


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def current_view(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**Current view:**"))


def url_view(at: AppTest) -> dict:
    """The page's keys in the URL (app.py adds the language)."""
    return {k: v for k, v in at.query_params.items() if k != "lang"}


def widget_view(at: AppTest) -> dict:
    """The view the widgets show, written as the URL writes it."""
    values = dict(
        preset=at.radio(key="gf_preset").value,
        depth=at.select_slider(key="gf_depth").value,
        seed=at.number_input(key="gf_seed").value,
        **{k: at.selectbox(key=f"gf_{k}").value for k in ("arch", "norm", "act", "block", "init", "batch", "sweep")},
    )
    return {k: str(v) for k, v in values.items()}


@pytest.mark.parametrize(
    "preset, label, settings",
    [
        ("vanishing", "Vanishing gradients", dict(norm="none", act="sigmoid", block="pre", depth="56")),
        (
            "exploding",
            "Exploding gradients at initialisation",
            dict(norm="batch", act="relu", block="post", depth="110"),
        ),
        ("paper", "The paper's setting", dict(norm="batch", act="relu", block="post", depth="56")),
        ("block_design", "Why block design matters", dict(norm="none", act="sigmoid", block="post", depth="56")),
    ],
)
def test_each_preset_sets_the_view_and_explains_it(preset, label, settings):
    at = open_page()
    assert chart_titles(at) == [NORMS, SIGNALS, SWEEP]
    at.radio(key="gf_preset").set_value(preset).run()
    assert not at.exception, at.exception
    assert chart_titles(at) == [NORMS, SIGNALS, SWEEP]
    assert label in subheaders(at)
    for key, value in settings.items():
        assert at.query_params[key] == value, key
    assert at.query_params["preset"] == preset
    assert widget_view(at) == url_view(at)  # the preset's settings are in the widgets too
    ratios = {m.label: m.value for m in at.metric}
    plain = ratios["Plain twin: first/last ratio"]
    if preset == "vanishing":
        assert plain == "0 (underflow)" or float(plain) < 1e-6
        assert float(ratios["ResNet: first/last ratio"]) > 1e-4
    if preset == "block_design":  # both designs measured side by side: pre-activation keeps the gradient alive
        assert float(ratios["ResNet, pre-activation"]) > 1e4 * float(ratios["ResNet, post-activation"])
    if preset in ("exploding", "paper"):
        assert float(plain) > 10 * float(ratios["ResNet: first/last ratio"])


def test_url_reproduces_the_view():
    url = dict(
        preset="custom",
        arch="cifar",
        depth="14",
        norm="none",
        act="tanh",
        block="pre",
        init="xavier",
        batch="noise",
        seed="7",
        sweep="off",
    )
    at = open_page(url)
    assert not at.warning
    assert at.selectbox(key="gf_act").value == "tanh"
    assert at.selectbox(key="gf_init").value == "xavier"
    assert at.select_slider(key="gf_depth").value == 14
    assert at.number_input(key="gf_seed").value == 7
    assert widget_view(at) == url
    assert current_view(at) == (
        "**Current view:** CIFAR, 14 layers · no normalisation · tanh · pre-activation (2016) · "
        "Xavier init · random noise · seed 7"
    )
    assert chart_titles(at) == [NORMS, SIGNALS]  # sweep off
    assert url_view(at) == url  # app.py adds only the language


def test_preset_in_url_fills_its_settings():
    at = open_page({"preset": "vanishing", "sweep": "off"})
    assert at.radio(key="gf_preset").value == "vanishing"
    assert at.selectbox(key="gf_act").value == "sigmoid"
    assert at.query_params["depth"] == "56" and at.query_params["block"] == "pre"


def test_changing_a_control_updates_the_url_and_leaves_the_preset():
    at = open_page({"preset": "paper", "sweep": "off"})
    at.select_slider(key="gf_depth").set_value(8).run()
    assert not at.exception
    assert at.query_params["depth"] == "8"
    assert at.query_params["preset"] == "custom"
    assert at.radio(key="gf_preset").value == "custom"
    at.selectbox(key="gf_act").set_value("tanh").run()
    at.number_input(key="gf_seed").set_value(3).run()
    assert not at.exception
    assert at.query_params["act"] == "tanh" and at.query_params["seed"] == "3"
    assert "CIFAR, 8 layers" in " ".join(m.value for m in at.markdown)


BAD_URL = {"depth": "57", "act": "swish", "seed": "-1", "sweep": "off"}


def test_bad_url_values_fall_back_to_defaults_with_a_warning():
    at = open_page(BAD_URL)
    assert warnings(at) == [
        "Ignored a setting in the URL: `depth=57` is not valid (choose from 8, 14, 20, 32, 44, 56, 110, 164); "
        "using `20`.",
        "Ignored a setting in the URL: `act=swish` is not valid (choose from relu, tanh, sigmoid); using `relu`.",
        "Ignored a setting in the URL: `seed=-1` is not valid (a whole number from 0 to 2147483647); using `0`.",
    ]
    assert at.query_params["depth"] == "20" and at.query_params["act"] == "relu" and at.query_params["seed"] == "0"
    assert widget_view(at) == url_view(at)
    assert chart_titles(at) == [NORMS, SIGNALS]


def test_bad_url_values_are_explained_in_chinese():
    at = open_page({**BAD_URL, "lang": "zh"})
    assert warnings(at)[:2] == [
        "已忽略网址中的一项设置：`depth=57` 无效（可选：8, 14, 20, 32, 44, 56, 110, 164）；改用 `20`。",
        "已忽略网址中的一项设置：`act=swish` 无效（可选：relu, tanh, sigmoid）；改用 `relu`。",
    ]
    assert warnings(at)[2] == "已忽略网址中的一项设置：`seed=-1` 无效（应为 0 到 2147483647 之间的整数）；改用 `0`。"
    assert at.selectbox(key="gf_act").label == "激活函数" and at.selectbox(key="gf_act").value == "relu"


def test_bad_url_value_under_a_preset_names_the_value_the_preset_uses():
    at = open_page({"preset": "paper", "depth": "999", "sweep": "off"})
    assert warnings(at) == [
        "Ignored a setting in the URL: `depth=999` is not valid (choose from 8, 14, 20, 32, 44, "
        "56, 110, 164); using `56`."
    ]
    assert at.query_params["depth"] == "56" and at.query_params["preset"] == "paper"
    assert widget_view(at) == url_view(at)


def test_the_lessons_links_open_their_preset_and_an_explicit_setting_leaves_it():
    view = {k: str(v) for k, v in preset_view("exploding", sweep="off").items()}  # what the Lesson links to
    at = open_page(view)
    assert not at.warning and widget_view(at) == url_view(at) == view
    assert "Exploding gradients at initialisation" in subheaders(at)
    at = open_page({"preset": "vanishing", "depth": "20", "sweep": "off"})  # explicit settings win over the preset
    assert at.radio(key="gf_preset").value == "custom" and at.query_params["preset"] == "custom"
    assert at.select_slider(key="gf_depth").value == 20 and at.selectbox(key="gf_act").value == "sigmoid"
    assert current_view(at).startswith("**Current view:** CIFAR, 20 layers · no normalisation · sigmoid")


@pytest.mark.browser
def test_page_opens_from_its_url(page, app_url):
    # Take the page's address from the navigation, so the test follows app.py's routing.
    page.goto(app_url)
    # Wait for app.py's own sidebar: until the router has run once, Streamlit serves pages/ as standalone pages.
    page.get_by_text("Running on").first.wait_for()
    href = page.get_by_role("link", name="Gradient flow", exact=True).first.get_attribute("href")
    page_url = href if href.startswith("http") else app_url + "/" + href.lstrip("/")
    page.goto(page_url.split("?")[0] + "?preset=vanishing&batch=noise&seed=3&sweep=off")
    page.get_by_text("Vanishing gradients").first.wait_for()
    page.get_by_text("Running on").first.wait_for()  # rendered inside the app's router, not standalone
    page.get_by_text("random noise · seed 3").first.wait_for()  # the URL's settings were applied
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    assert page.locator(".js-plotly-plot").count() == 2
    assert "Plain twin — first/last ratio" in page.locator(".js-plotly-plot").first.inner_text()
    page.wait_for_timeout(1500)
    assert "preset=vanishing" in page.url and "seed=3" in page.url
    screenshot(page, "gradient_flow")


def test_views_already_seen_are_not_recomputed(monkeypatch):
    calls = []
    measure = rv.gradients.gradient_flow

    def counting_gradient_flow(model, x, y, **kwargs):
        calls.append(model.twin)
        return measure(model, x, y, **kwargs)

    monkeypatch.setattr(rv.gradients, "gradient_flow", counting_gradient_flow)  # what twin_flow calls
    view = dict(preset="custom", depth="8", act="tanh", init="default", batch="noise", seed="90210", sweep="off")
    at = open_page(view)
    assert sorted(calls) == ["plain", "resnet"]
    at.number_input(key="gf_seed").set_value(90211).run()
    assert len(calls) == 4
    at.number_input(key="gf_seed").set_value(90210).run()  # back to a view already seen: served from the cache
    assert not at.exception
    assert len(calls) == 4
