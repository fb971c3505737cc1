"""In a real browser, every page's widgets show the view the page computes, and the URL says the same.

Each test changes the page's selects and radios one at a time (and the language at the end) and, after each
change, compares what the widgets show with the URL and with the captions, titles or text the page computed
from its view. The Explain test at the top covers an upload: afterwards the Methods box must still show
Grad-CAM and Stage layer3, as the maps and the URL do (a widget drawn after an early stop of the page falls back
to its own default unless the page sends its value again).
"""

import os
import re
import time
from urllib.parse import parse_qsl, urlparse

import pytest
from conftest import screenshot
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from resnet_viz.i18n import _, language

pytestmark = pytest.mark.browser
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resnet_viz", "assets", "samples")
SCRIPT_STATE = "document.querySelector('[data-testid=stApp]')?.dataset.testScriptState"


# -- reading and driving widgets -------------------------------------------------------------------------------


def idle(page) -> None:
    """Wait until the app's script run that the last action started has finished."""
    try:
        page.wait_for_function(f"{SCRIPT_STATE} === 'running'", timeout=3000)
    except PlaywrightTimeout:
        pass  # a quick run may be over already
    page.wait_for_function(f"{SCRIPT_STATE} === 'notRunning'", timeout=240_000)
    page.wait_for_timeout(300)


def main(page):
    return page.locator("[data-testid=stMain]")


def open_options(page, label: str) -> None:
    """Open the list of options of the select box or multiselect labelled ``label``."""
    box = main(page).get_by_role("combobox", name=label, exact=True)
    for _attempt in range(3):  # a click that only scrolls the box into view leaves the list closed
        box.click()
        try:
            expect(box).to_have_attribute("aria-expanded", "true", timeout=3000)
            return
        except AssertionError:
            page.keyboard.press("Escape")
    raise AssertionError(f"the options of {label!r} did not open")


def pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the select box labelled ``label``.

    A script run still drawing the page re-renders an open list, and its options keep leaving the DOM under the
    click: then close the list, wait for the run to end and open it again."""
    for attempt in range(3):
        idle(page)
        open_options(page, label)
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    idle(page)


def choose(page, label: str, option: str, where=None) -> None:
    """Choose ``option`` in the radio group labelled ``label``."""
    (where or main(page)).get_by_role("radiogroup", name=label, exact=True).get_by_text(option, exact=True).click()
    idle(page)


def add_to(page, label: str, option: str) -> None:
    """Add ``option`` to the multiselect labelled ``label``."""
    open_options(page, label)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    idle(page)


def shown(page, label: str) -> str:
    """The option a select box shows."""
    return main(page).get_by_role("combobox", name=label, exact=True).input_value()


def checked(page, label: str) -> str:
    group = main(page).get_by_role("radiogroup", name=label, exact=True)
    return group.locator("[data-testid=stRadioOption][data-selected=true]").inner_text().strip()


def chips(page, label: str) -> list[str]:
    """The options a multiselect shows as chosen."""
    box = (
        main(page)
        .locator("[data-testid=stMultiSelect]")
        .filter(has=page.get_by_role("combobox", name=label, exact=True))
    )
    return [tag.get_attribute("aria-label") for tag in box.locator("[data-tag]").all()]


def url(page) -> dict[str, str]:
    return dict(parse_qsl(urlparse(page.url).query, keep_blank_values=True))


def url_settles(page, expected: dict[str, str], timeout_s: float = 30) -> dict[str, str]:
    """The URL's values for ``expected``'s keys, once they equal ``expected`` or ``timeout_s`` has passed.

    The browser rewrites the URL after the script run that a widget change starts; on a loaded machine
    that run can begin after ``idle`` has already returned.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        now = {k: url(page).get(k) for k in expected}
        if now == expected or time.monotonic() > deadline:
            return now
        page.wait_for_timeout(250)


def captions(page) -> list[str]:
    return main(page).locator("[data-testid=stImageCaption]").all_inner_texts()


def no_exception(page) -> None:
    assert main(page).locator("[data-testid=stException]").count() == 0, main(page).inner_text()[:2000]


def expand(page, title: str, shows, *, parent=None) -> None:
    """Open the expander called ``title`` until ``shows`` (a locator inside it) is visible.

    ``parent`` opens the expander around it again first, for when a redraw of the page closed it.
    """
    for _attempt in range(4):
        if shows.is_visible():
            return
        if parent:
            parent()
        try:
            main(page).locator("summary").filter(has_text=title).first.click(timeout=10_000)
            shows.wait_for(state="visible", timeout=5000)
            return
        except PlaywrightTimeout:
            idle(page)
    raise AssertionError(f"the expander {title!r} did not open")


def to_chinese(page) -> None:
    choose(page, "Language", "中文", where=page.locator("[data-testid=stSidebar]"))


def zh(text: str) -> str:
    with language("zh"):
        return _(text)


# -- Explain ------------------------------------------------------------------------------------------------------


def open_explain(page, app_url: str, query: str = "") -> None:
    page.goto(f"{app_url}/explain{query}")
    main(page).get_by_text("Grad-CAM for", exact=False).first.wait_for()
    idle(page)


def test_explain_after_an_upload_the_widgets_show_the_maps_view(page, app_url):
    open_explain(page, app_url)
    choose(page, "Image", "Upload")
    main(page).get_by_text("Choose a file to see what the twins make of it.").wait_for()
    main(page).locator("input[type=file]").set_input_files(os.path.join(SAMPLES, "chelsea.png"))
    expect(main(page).locator("[data-testid=stImageCaption]")).to_have_count(2, timeout=120_000)
    idle(page)
    no_exception(page)
    assert chips(page, "Methods") == ["Grad-CAM"]
    assert shown(page, "Stage") == "layer3"
    assert all(c.startswith("Grad-CAM for '") and c.endswith("at layer3") for c in captions(page)), captions(page)
    assert url(page)["methods"] == "Grad-CAM" and url(page)["stage"] == "layer3"
    screenshot(page, "explain-upload-widgets")


EXPLAIN_MODELS = {
    "shapes-20": "Bundled ResNet-20 and Plain-20 (shapes, offline)",
    "shapes-56": "Bundled ResNet-56 and Plain-56 (shapes, offline)",
}


def test_explain_widgets_url_and_maps_agree_through_every_select_and_radio(page, app_url):
    open_explain(page, app_url)
    view = {"model": "shapes-20", "methods": ["Grad-CAM"], "stage": "layer3"}

    def agree(maps_shown: bool = True, lang: str = "en") -> None:
        no_exception(page)
        wanted = {"model": view["model"], "methods": ",".join(view["methods"]), "stage": view["stage"]}
        assert url_settles(page, wanted) == wanted
        model_label = EXPLAIN_MODELS[view["model"]]
        assert shown(page, "Model" if lang == "en" else zh("Model")) == (
            model_label if lang == "en" else zh(model_label)
        )
        if not maps_shown:
            assert captions(page) == []
            return
        assert chips(page, "Methods" if lang == "en" else zh("Methods")) == view["methods"]
        assert shown(page, "Stage" if lang == "en" else zh("Stage")) == view["stage"]
        maps = captions(page)
        assert len(maps) == 2 * len(view["methods"]), maps
        for i, method in enumerate(view["methods"]):  # rows are methods, columns twins
            for caption in maps[2 * i : 2 * i + 2]:
                assert caption.startswith(method), (method, caption)
                assert (view["stage"] in caption) == (method == "Grad-CAM"), caption

    agree()
    pick(page, "Model", EXPLAIN_MODELS["shapes-56"])
    view["model"] = "shapes-56"
    agree()
    pick(page, "Stage", "layer2")
    view["stage"] = "layer2"
    agree()
    add_to(page, "Methods", "Saliency")
    view["methods"].append("Saliency")
    agree()
    open_options(page, "Class to explain")
    other = page.get_by_role("option").nth(1)
    name = other.inner_text().strip()
    other.click()
    idle(page)
    agree()
    assert shown(page, "Class to explain") == name and all(f"'{name}'" in c for c in captions(page))
    choose(page, "Image", "Sample photo")
    agree()
    pick(page, "Photo", "Coffee")
    agree()
    assert shown(page, "Photo") == "Coffee"
    for kind in ("Upload", "Camera"):  # the page stops before the maps: the URL keeps the view
        choose(page, "Image", kind)
        agree(maps_shown=False)
    choose(page, "Image", "Sample photo")
    agree()
    assert shown(page, "Photo") == "Coffee"  # kept while the page had stopped
    choose(page, "Image", "Shapes sample")
    agree()
    to_chinese(page)
    agree(lang="zh")
    screenshot(page, "explain-walk")


# -- Gradient flow ------------------------------------------------------------------------------------------------

GF = {  # URL key: (the widget's label, {value: the option's label})
    "arch": ("Architecture", {"cifar": "CIFAR ResNet (6n+2 layers)", "resnet18": "ResNet-18 (torchvision)"}),
    "norm": ("Normalisation", {"batch": "BatchNorm", "none": "none"}),
    "act": ("Activation", {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}),
    "block": ("Block", {"post": "post-activation (2015)", "pre": "pre-activation (2016)"}),
    "init": ("Initialisation", {"kaiming": "Kaiming", "xavier": "Xavier"}),
    "batch": ("Batch", {"shapes": "bundled shapes", "noise": "random noise"}),
    "sweep": ("Depth sweep", {"on": "on", "off": "off"}),
}
PRESETS = {"custom": "Custom", "vanishing": "Vanishing gradients"}


def gf_description(view: dict) -> str:
    """What the page's "Current view" line says for ``view``."""
    arch = f"CIFAR, {view['depth']} layers" if view["arch"] == "cifar" else GF["arch"][1][view["arch"]]
    norm = "BatchNorm" if view["norm"] == "batch" else "no normalisation"
    return " · ".join(
        [
            arch,
            norm,
            GF["act"][1][view["act"]],
            GF["block"][1][view["block"]],
            f"{GF['init'][1][view['init']]} init",
            GF["batch"][1][view["batch"]],
            f"seed {view['seed']}",
        ]
    )


def test_gradient_flow_widgets_url_and_view_agree_through_every_select_and_radio(page, app_url):
    page.goto(f"{app_url}/gradient_flow?sweep=off&depth=8&seed=4")
    main(page).get_by_text("Current view:").wait_for()
    idle(page)
    view = dict(
        preset="custom",
        arch="cifar",
        depth=8,
        norm="batch",
        act="relu",
        block="post",
        init="kaiming",
        batch="shapes",
        seed=4,
        sweep="off",
    )

    def agree(lang: str = "en") -> None:
        no_exception(page)
        wanted = {k: str(v) for k, v in view.items()}
        assert url_settles(page, wanted) == wanted
        tr = (lambda text: text) if lang == "en" else zh
        for key, (label, options) in GF.items():
            assert shown(page, tr(label)) == tr(options[view[key]]), key
        assert checked(page, tr("Lesson")) == tr(PRESETS[view["preset"]])
        slider = main(page).get_by_role("slider", name=tr("CIFAR depth"))
        assert slider.get_attribute("aria-valuetext") == str(view["depth"])
        if lang == "en":
            expect(main(page).locator("p").filter(has_text="Current view:")).to_have_text(
                "Current view: " + gf_description(view)
            )
        expect(main(page).locator(".js-plotly-plot")).to_have_count(3 if view["sweep"] == "on" else 2)
        if lang == "en":
            expect(main(page).locator(".js-plotly-plot .gtitle")).to_have_text(
                [
                    "Gradient norm per layer",
                    "Forward signal: standard deviation of each block's output",
                    "First/last gradient ratio against depth",
                ][: 3 if view["sweep"] == "on" else 2]
            )

    agree()
    choose(page, "Lesson", PRESETS["vanishing"])
    view.update(preset="vanishing", depth=56, norm="none", act="sigmoid", block="pre")
    agree()
    expect(main(page).get_by_role("heading", name="Vanishing gradients")).to_be_visible()
    steps = [
        ("act", "tanh"),
        ("norm", "batch"),
        ("block", "post"),
        ("init", "xavier"),
        ("batch", "noise"),
        ("arch", "resnet18"),
        ("sweep", "on"),
    ]
    for key, value in steps:
        label, options = GF[key]
        pick(page, label, options[value])
        view[key] = value
        view["preset"] = "custom"  # every one of these leaves the preset (or was custom already)
        agree()
    to_chinese(page)
    agree(lang="zh")
    screenshot(page, "gradient-flow-walk")


# -- Loss landscape -----------------------------------------------------------------------------------------------

LL_MODELS = {"shapes-20": "ResNet-20 vs Plain-20", "shapes-56": "ResNet-56 vs Plain-56"}
LL_VIEWS = {
    "contour": "Contour",
    "3d": "3-D surface",
    "slices": "1-D slices",
    "convexity": "Convexity map",
    "path": "Optimiser's path",
}


def test_loss_landscape_widgets_url_and_view_agree_through_every_select_and_radio(page, app_url):
    page.goto(f"{app_url}/loss_landscape?model=shapes-20")
    main(page).get_by_text("non-convex points").first.wait_for()
    idle(page)
    view = {"model": "shapes-20", "view": "contour"}

    def agree(lang: str = "en") -> None:
        no_exception(page)
        assert url_settles(page, view) == view
        tr = (lambda text: text) if lang == "en" else zh
        assert checked(page, tr("Twins")) == tr(LL_MODELS[view["model"]])
        assert checked(page, tr("View")) == tr(LL_VIEWS[view["view"]])
        if lang == "en" and view["view"] == "path":
            expect(main(page).get_by_text("principal directions", exact=False).first).to_be_visible()
        elif lang == "en":
            expect(main(page).get_by_text("Shipped surfaces: 21×21 grid", exact=False)).to_be_visible()
            expect(main(page).locator(".js-plotly-plot")).to_have_count(2 if view["view"] == "slices" else 1)

    agree()
    choose(page, "Twins", LL_MODELS["shapes-56"])
    view["model"] = "shapes-56"
    agree()
    for key in ("3d", "slices", "convexity", "path", "contour"):
        choose(page, "View", LL_VIEWS[key])
        view["view"] = key
        agree()
    expand(page, "Recompute live", main(page).get_by_role("combobox", name="Grid points per axis", exact=True))
    for label, option in (("Grid points per axis", "11"), ("Training images", "32")):
        pick(page, label, option)
        assert shown(page, label) == option
        agree()
    to_chinese(page)
    agree(lang="zh")
    screenshot(page, "loss-landscape-walk")


# -- Training race ------------------------------------------------------------------------------------------------


def test_training_race_settings_and_url_agree_through_every_select(page, app_url):
    page.goto(f"{app_url}/training_race?steps=50")
    main(page).get_by_text("What to look for").first.wait_for()
    idle(page)

    def open_settings() -> None:
        expand(page, "Race settings", main(page).get_by_role("combobox", name="Depths", exact=True))

    open_settings()
    expand(page, "Advanced recipe", main(page).get_by_label("Steps", exact=True), parent=open_settings)
    settings = {"depths": "20,56", "steps": "50", "batch": "32"}

    def agree() -> None:
        no_exception(page)
        assert url_settles(page, settings) == settings
        assert ",".join(chips(page, "Depths")) == settings["depths"]
        assert main(page).get_by_label("Steps", exact=True).input_value() == settings["steps"]
        assert main(page).get_by_label("Batch size", exact=True).input_value() == settings["batch"]
        expect(main(page).get_by_text("Recorded with", exact=False)).to_be_visible()  # the race on show stays

    agree()
    add_to(page, "Depths", "8")
    settings["depths"] = "20,56,8"
    agree()
    for label, option in (
        ("Data set", "Bundled shapes (offline)"),
        ("Optimiser", "SGD with momentum"),
        ("Decay", "constant"),
        ("Image size (px)", "32"),
        ("Precision", "float32 (forced)"),
    ):
        pick(page, label, option)
        assert shown(page, label) == option
        agree()
    expand(page, "Replay: gradient norms", main(page).get_by_role("combobox", name="Depth", exact=True))
    pick(page, "Depth", "56")
    agree()
    expect(main(page).locator(".js-plotly-plot .gtitle").filter(has_text="depth 56").first).to_be_visible()
    to_chinese(page)
    no_exception(page)
    expand(page, zh("Race settings"), main(page).get_by_role("combobox", name=zh("Depths"), exact=True))
    assert url_settles(page, settings) == settings and ",".join(chips(page, zh("Depths"))) == "20,56,8"
    screenshot(page, "training-race-walk")


# -- Residual vs identity -----------------------------------------------------------------------------------------


def test_residual_widgets_and_what_the_page_shows_agree_through_every_select_and_radio(page, app_url):
    page.goto(f"{app_url}/residual_vs_identity")
    main(page).get_by_text("Lesion lab").first.wait_for()
    idle(page)

    def agree(caption: str | None, twin: str = "ResNet") -> None:
        no_exception(page)
        if caption is None:
            expect(main(page).get_by_text("Upload a PNG, JPEG", exact=False)).to_be_visible()
            return
        expect(main(page).get_by_text(caption, exact=False).first).to_be_visible()
        assert checked(page, "Twin") == ("Plain twin" if twin == "plain" else "ResNet")
        maps = main(page).locator(".js-plotly-plot .gtitle").filter(has_text="relative to the mean |x|")
        expect(maps).to_have_text(re.compile("^Plain twin:" if twin == "plain" else "^ResNet:"))

    agree("Test shape #3")
    choose(page, "Input", "Batch of shapes")
    agree("64 test shapes")
    choose(page, "Input", "Sample photo")
    agree("Sample photo 'astronaut'")
    pick(page, "Sample photo", "Coffee")  # the shared picker titles the names, as Explain does
    agree("Sample photo 'coffee'")
    choose(page, "Twin", "Plain twin")
    agree("Sample photo 'coffee'", twin="plain")
    pick(page, "Twins", "Bundled shapes-56 (depth 56, trained on shapes)")
    agree("Sample photo 'coffee'", twin="plain")
    expect(main(page).get_by_role("button", name="Run the lesion lab")).to_be_visible()
    choose(page, "Input", "Upload")
    agree(None)
    choose(page, "Input", "Shapes test image")
    agree("Test shape #3")
    assert shown(page, "Twins") == "Bundled shapes-56 (depth 56, trained on shapes)"
    to_chinese(page)
    no_exception(page)
    assert "shapes-56" in shown(page, zh("Twins"))
    screenshot(page, "residual-walk")
