import pytest
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from conftest import open_app_page, screenshot

PAGE = "pages/gradient_flow.py"


@pytest.fixture(autouse=True)
def short_sweep(monkeypatch):
    # The page reads the sweep's depths at run time; two depths keep the AppTests fast.
    monkeypatch.setattr(rv.gradients, "SWEEP_DEPTHS", (8, 14))


def open_page(query_params: dict | None = None):
    return open_app_page(PAGE, query_params, timeout=180)


def subheaders(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


@pytest.mark.parametrize("preset, label, settings", [
    ("vanishing", "Vanishing gradients", dict(norm="none", act="sigmoid", block="pre", depth="56")),
    ("exploding", "Exploding gradients at initialisation", dict(norm="batch", act="relu", block="post", depth="110")),
    ("paper", "The paper's setting", dict(norm="batch", act="relu", block="post", depth="56")),
    ("block_design", "Why block design matters", dict(norm="none", act="sigmoid", block="post", depth="56")),
])
def test_each_preset_sets_the_view_and_explains_it(preset, label, settings):
    at = open_page()
    assert len(at.get("plotly_chart")) == 3
    at.radio(key="gf_preset").set_value(preset).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3  # gradient norms, forward signal, depth sweep
    assert label in subheaders(at)
    for key, value in settings.items():
        assert at.query_params[key] == value, key
    assert at.query_params["preset"] == preset
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
    url = dict(preset="custom", arch="cifar", depth="14", norm="none", act="tanh", block="pre", init="xavier",
               batch="noise", seed="7", sweep="off")
    at = open_page(url)
    assert not at.warning
    assert at.selectbox(key="gf_act").value == "tanh"
    assert at.selectbox(key="gf_init").value == "xavier"
    assert at.select_slider(key="gf_depth").value == 14
    assert at.number_input(key="gf_seed").value == 7
    assert len(at.get("plotly_chart")) == 2  # sweep off
    assert {k: v for k, v in at.query_params.items() if k != "lang"} == url  # app.py adds only the language


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


def test_bad_url_values_fall_back_to_defaults_with_a_warning():
    at = open_page({"depth": "57", "act": "swish", "seed": "-1", "sweep": "off"})
    text = " ".join(w.value for w in at.warning)
    assert "depth=57" in text and "act=swish" in text and "seed=-1" in text
    assert at.query_params["depth"] == "20" and at.query_params["act"] == "relu" and at.query_params["seed"] == "0"
    assert len(at.get("plotly_chart")) == 2


def test_bad_url_value_under_a_preset_names_the_value_the_preset_uses():
    at = open_page({"preset": "paper", "depth": "999", "sweep": "off"})
    text = " ".join(w.value for w in at.warning)
    assert "depth=999" in text and "using `56`" in text
    assert at.query_params["depth"] == "56" and at.query_params["preset"] == "paper"


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

    def counting_gradient_flow(model, x, y, **kwargs):
        calls.append(model.twin)
        return rv.gradients.gradient_flow(model, x, y, **kwargs)

    monkeypatch.setattr(rv, "gradient_flow", counting_gradient_flow)
    view = dict(preset="custom", depth="8", act="tanh", init="default", batch="noise", seed="90210", sweep="off")
    at = open_page(view)
    assert sorted(calls) == ["plain", "resnet"]
    at.number_input(key="gf_seed").set_value(90211).run()
    assert len(calls) == 4
    at.number_input(key="gf_seed").set_value(90210).run()  # back to a view already seen: served from the cache
    assert not at.exception
    assert len(calls) == 4
