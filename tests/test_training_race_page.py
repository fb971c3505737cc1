"""The Training race page: AppTest for the flow, a browser test for the live curves."""

import re
from pathlib import Path

import pytest
from conftest import chart_titles, open_app_page, screenshot, warnings
from streamlit.testing.v1 import AppTest

from resnet_viz import race as rr

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(autouse=True)
def fresh_registry(race_registry):
    """Each test's own registry of the server's races."""
    return race_registry


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/training_race.py")
    at.run()
    return at


def test_page_shows_the_recorded_race_with_controls_and_context():
    at = open_page()
    assert not at.exception
    labels = [b.label for b in at.button]
    assert "Start" in labels and "Stop" in labels
    stop = next(b for b in at.button if b.label == "Stop")
    assert stop.disabled  # nothing to stop yet
    shown = at.selectbox(key="race_show")
    assert shown.value == "recorded" and shown.options[0].startswith("Recorded race")
    assert chart_titles(at)[:2] == ["Training loss", "Error: training (thin), test (bold)"]
    text = " ".join(m.value for m in at.markdown)
    assert "degradation problem" in text
    paper = next(df.value for df in at.dataframe if "network" in df.value.columns)
    assert list(paper["network"]) == [f"ResNet-{d}" for d in rr.PAPER_CIFAR10_TEST_ERROR]  # the paper, for context
    recipe = rr.recorded_race()["recipe"]
    captions = " ".join(c.value for c in at.caption)
    assert f"Adam, learning rate {recipe['lr']:g}" in captions  # the recipe the recorded race ran with
    precision = {"bf16": "bfloat16", "fp32": "float32"}[recipe["precision"]]
    assert f"{recipe['steps']} steps of {recipe['batch_size']} images, {precision}" in captions


HOLDS, FAILS = "- :green[:material/check_circle:]", "- :red[:material/cancel:]"


def check_lines(at: AppTest) -> list[str]:
    """The Fig. 6 checks the page lists for the race on show."""
    return [line for m in at.markdown for line in m.value.splitlines() if line.startswith((HOLDS, FAILS))]


def test_the_checks_on_screen_are_those_of_the_shown_race_with_their_seed_counts():
    at = open_page()
    result = rr.recorded_race()
    checks = rr.fig6_checks(result)
    lines = check_lines(at)
    assert len(lines) == len(checks) == 4  # both halves of Fig. 6, two checks each
    seeds = rr.race_seeds(result)
    for line, check in zip(lines, checks):
        assert line.startswith(HOLDS if check["holds"] else FAILS)
        for value in check["values"].values():
            if isinstance(value, float):
                assert f"{value:.2f}" in line, (check["check"], line)
        # How many of the race's seeds show the check on their own, counted from the runs on screen.
        if len(seeds) > 1:
            assert f"({check['seeds_agree']} of {len(seeds)} seeds show it on their own.)" in line
    text = " ".join(m.value for m in at.markdown)
    assert len(seeds) == 1 or f"averaged over seeds {', '.join(map(str, seeds))}" in text
    assert not any("Checked on" in c.value for c in at.caption)  # no sentence about seeds not on screen
    summary = next(df.value for df in at.dataframe if "seeds" in df.value.columns)
    assert list(summary["seeds"]) == [len(runs) for runs in rr.nets(result).values()]


def test_recorded_race_is_described_in_the_visitors_language():
    from conftest import open_app_page

    english = " ".join(c.value for c in open_app_page("pages/training_race.py").caption)
    assert "shapes, easy variant, 16x16 px (4000 training images, 500 test images)" in english
    chinese = " ".join(c.value for c in open_app_page("pages/training_race.py", {"lang": "zh"}).caption)
    assert "形状数据集（简单版），16x16 像素（4000 张训练图像，500 张测试图像）" in chinese
    assert "easy variant" not in chinese


def test_start_trains_a_race_that_stays_in_the_session():
    at = open_page()
    at.multiselect(key="race_depths").set_value([8])
    at.number_input(key="race_steps").set_value(10)
    at.number_input(key="race_batch").set_value(8)
    at.number_input(key="race_seeds").set_value(2)
    at.run()
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert not at.exception
    race = at.session_state["race_live"]
    assert [(r.label, r.seed) for r in race.runs] in (
        [],
        [("ResNet-8", 0), ("Plain-8", 0), ("ResNet-8", 1), ("Plain-8", 1)],
    )
    assert race.join(120) and race.status == "finished"
    at.run()
    assert not at.exception
    results = at.session_state["race_results"]
    assert len(results) == 1
    ((name, result),) = results.items()
    assert at.selectbox(key="race_show").value == name == "race:" + rr.race_id(race.config, "cpu")
    assert [len(r["history"]) for r in result["runs"]] == [10, 10, 10, 10]
    label = next(o for o in at.selectbox(key="race_show").options if o.startswith("Trained on this server"))
    assert label.endswith("UTC): ResNet-8, Plain-8")  # each net named once, not once per seed
    assert at.query_params["race"] == rr.race_id(race.config, "cpu")  # the race's short link
    at.checkbox(key="race_each_seed").check().run()  # each seed's curve on request
    assert not at.exception
    assert {b.label for b in at.get("download_button")} >= {"Download CSV", "Download JSON", "Depth 8 (.safetensors)"}


@pytest.mark.browser
def test_start_grows_the_curves_and_stop_freezes_them(page, app_url):
    page.goto(app_url)  # through the sidebar: robust to how app.py names the URL path
    page.get_by_role("link", name="Training race").first.click()
    page.get_by_text("What to look for").first.wait_for()
    # Small batches keep the test quick on 2 shared cores.
    page.get_by_text("Race settings").click()
    page.get_by_text("Advanced recipe").click()
    batch = page.get_by_label("Batch size")
    batch.fill("4")
    batch.press("Enter")
    page.wait_for_timeout(1500)
    # Points in the live loss chart (the largest copy: a fragment rerun can briefly leave a stale one).
    count_points = """() => Math.max(0, ...Array.from(document.querySelectorAll('.st-key-live_loss .js-plotly-plot'))
        .map(d => (d.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0)))"""
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(f"({count_points})() > 0", timeout=180_000)  # data and networks first
    first = page.evaluate(count_points)
    page.wait_for_function(f"({count_points})() > {first}", timeout=60_000)
    grown = page.evaluate(count_points)
    assert grown > first
    page.get_by_text("images/s").first.wait_for()  # the progress bar with throughput and ETA
    screenshot(page, "training_race")
    page.get_by_role("button", name="Stop").click()
    # The stopped race moves into the session's finished races and is shown; its curves no longer change.
    page.locator(".st-key-shown_loss .js-plotly-plot").first.wait_for(timeout=30_000)
    count_shown = count_points.replace("live_loss", "shown_loss")
    page.wait_for_timeout(1000)
    frozen = page.evaluate(count_shown)
    assert frozen >= grown
    page.wait_for_timeout(2500)
    assert page.evaluate(count_shown) == frozen
    assert page.get_by_role("button", name="Stop").is_disabled()
    assert "(stopped" in page.content()  # kept in the session as a finished race
    screenshot(page, "training_race_stopped")


@pytest.mark.browser
def test_pause_holds_the_race_at_once_even_while_it_measures_and_resume_goes_on(page, app_url):
    page.goto(app_url + "/training_race?lang=en&depths=8&steps=20000&batch=4")
    page.get_by_text("What to look for").first.wait_for()
    page.get_by_role("button", name="Start").click()
    page.get_by_role("button", name="Pause").click()  # at once: queued, preparing or measuring the engine
    page.get_by_role("button", name="Resume").wait_for(timeout=10_000)
    page.get_by_text(re.compile(r"· paused")).first.wait_for(timeout=30_000)
    step = re.compile(r"Step (\d+) of 20000")

    def shown_step() -> int:
        found = step.search(page.locator("[data-testid=stMain]").inner_text())
        return int(found.group(1)) if found else 0

    held = shown_step()
    page.wait_for_timeout(3000)
    assert shown_step() == held  # nothing trains while paused
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Pause").wait_for(timeout=10_000)
    page.wait_for_function(
        f"""() => {{ const m = document.body.innerText.match(/Step (\\d+) of 20000/);
                    return m && Number(m[1]) > {held}; }}""",
        timeout=120_000,
    )
    page.get_by_role("button", name="Stop").click()


@pytest.mark.browser
def test_the_live_race_stays_in_the_visitor_s_language_between_polls(page, app_url):
    """The live view redraws itself (a fragment that skips app.py); its progress line stays Chinese."""
    page.goto(app_url + "/training_race?lang=zh&depths=8&steps=20000&batch=4")
    page.get_by_text("观察要点").first.wait_for()
    page.get_by_role("button", name="开始").click()
    progress = page.get_by_text(re.compile(r"第 \d+ / 20000 步"))
    progress.first.wait_for(timeout=180_000)  # the first line can come from the full run after the click
    step = re.compile(r"第 (\d+) / 20000 步")
    first = int(step.search(progress.first.inner_text()).group(1))
    page.wait_for_function(
        f"""() => {{ const m = document.body.innerText.match(/第 (\\d+) \\/ 20000 步/);
                    return m && Number(m[1]) > {first}; }}""",
        timeout=60_000,
    )  # redrawn by the fragment
    assert not page.get_by_text(re.compile(r"Step \d+ of 20000")).count()
    assert page.get_by_text("训练方式").count()  # how the race trains, in Chinese too
    page.get_by_role("button", name="停止").click()


def test_url_presets_fill_the_settings_and_bad_values_are_ignored():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["depths"] = "8,14"
    at.query_params["steps"] = "30"
    at.query_params["batch"] = "99999"  # out of range: the default stays
    at.run()
    at.switch_page("pages/training_race.py")
    at.run()
    assert not at.exception
    assert at.multiselect(key="race_depths").value == [8, 14]
    assert at.number_input(key="race_steps").value == 30
    assert at.number_input(key="race_batch").value == 32
    assert warnings(at) == [
        "Ignored a setting in the URL: `batch=99999` is not valid (a whole number from 4 to 1024); using `32`."
    ]
    assert {k: at.query_params[k] for k in ("depths", "steps", "batch")} == {
        "depths": "8,14",
        "steps": "30",
        "batch": "32",
    }
    at.multiselect(key="race_depths").set_value([20]).run()  # the link follows the settings
    assert at.query_params["depths"] == "20" and at.number_input(key="race_steps").value == 30
    assert not at.warning


@pytest.mark.parametrize(
    "lang, note",
    [
        (
            "en",
            "Ignored a setting in the URL: `depths=8,99` is not valid (choose from 8, 14, 20, 32, 44, 56, 110); "
            "using `20, 56`.",
        ),
        ("zh", "已忽略网址中的一项设置：`depths=8,99` 无效（可选：8, 14, 20, 32, 44, 56, 110）；改用 `20, 56`。"),
    ],
)
def test_a_bad_depth_in_the_url_keeps_the_default_depths(lang, note):
    at = open_app_page("pages/training_race.py", {"depths": "8,99", "steps": "abc", "lang": lang})
    assert at.multiselect(key="race_depths").value == [20, 56]
    assert at.number_input(key="race_steps").value == rr.quick_recipe().steps
    assert warnings(at)[0] == note and len(warnings(at)) == 2


def test_server_config_skips_streamlit_gc_after_each_rerun(monkeypatch):
    """Streamlit's default gc.collect(2) after every rerun held the GIL for ~0.3 s twice a second while the live
    view polled, and the race's worker thread trained 7x slower in the app than from the CLI."""
    from streamlit import config

    monkeypatch.chdir(Path(APP).parent)  # where `streamlit run app.py` reads .streamlit/config.toml
    config.get_config_options(force_reparse=True)
    assert config.get_option("runner.postScriptGC") is False


def test_a_loaded_race_is_listed_once_and_named_in_the_visitors_language():
    at = open_page()
    data = rr.race_to_json(rr.recorded_race())
    uploader = next(u for u in at.get("file_uploader") if u.key == "race_upload")
    uploader.set_value(("mine.json", data.encode() if isinstance(data, str) else data, "application/json")).run()
    assert not at.exception
    show = at.selectbox(key="race_show")
    assert show.value == "loaded:mine.json" and "Loaded: mine.json" in show.options
    assert len(check_lines(at)) == len(rr.fig6_checks(rr.recorded_race()))  # the loaded race's checks on show
    at.sidebar.radio(key="lang").set_value("zh").run()
    assert not at.exception
    assert "已加载：mine.json" in at.selectbox(key="race_show").options
    assert list(at.session_state["race_results"]) == ["loaded:mine.json"]  # the same file, whatever the language
