"""The Training race page: AppTest for the flow, a browser test for the live curves."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import screenshot

APP = str(Path(__file__).resolve().parents[1] / "app.py")


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
    charts = at.get("plotly_chart")
    assert len(charts) >= 2
    text = " ".join(m.value for m in at.markdown)
    assert "degradation problem" in text
    assert any("8.75" in str(df.value) for df in at.dataframe)  # the paper's numbers for context
    captions = " ".join(c.value for c in at.caption)
    assert "Adam, learning rate 0.01" in captions and "400 steps of 32 images, bfloat16" in captions  # the recipe
    assert "3 seeds (0, 1, 2)" in captions and "all 3 show" in captions  # how many seeds agree
    assert text.count("✅") == 4  # the recorded race shows both halves of Fig. 6


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
    at.run()
    next(b for b in at.button if b.label == "Start").click()
    at.run()
    assert not at.exception
    race = at.session_state["race_live"]
    assert [r.label for r in race.runs] in ([], ["ResNet-8", "Plain-8"])
    assert race.join(120) and race.status == "finished"
    at.run()
    assert not at.exception
    results = at.session_state["race_results"]
    assert len(results) == 1
    (name, result), = results.items()
    assert at.selectbox(key="race_show").value == name
    assert [len(r["history"]) for r in result["runs"]] == [10, 10]
    assert {b.label for b in at.get("download_button")} >= {"Download CSV", "Download JSON"}


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
    assert [w.value for w in at.warning] == [
        "Ignored a setting in the URL: `batch=99999` is not valid (a whole number from 4 to 1024); using the default."]


def test_server_config_skips_streamlit_gc_after_each_rerun(monkeypatch):
    """Streamlit's default gc.collect(2) after every rerun held the GIL for ~0.3 s twice a second while the live
    view polled, and the race's worker thread trained 7x slower in the app than from the CLI."""
    from streamlit import config

    monkeypatch.chdir(Path(APP).parent)  # where `streamlit run app.py` reads .streamlit/config.toml
    config.get_config_options(force_reparse=True)
    assert config.get_option("runner.postScriptGC") is False
