"""Training dynamics at a glance: the layer x step heatmaps of a race's snapshots, and their section on the page."""

import copy
import json
import math
import re
import statistics
from pathlib import Path

import pytest
from conftest import chart_alts, chart_titles
from streamlit.testing.v1 import AppTest

from resnet_viz import race as rr
from resnet_viz import race_dynamics_plots as rd
from resnet_viz.chart_text import describe, format_number
from resnet_viz.data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from resnet_viz.training import Recipe
from ui.race_dynamics import explanation

APP = str(Path(__file__).resolve().parents[1] / "app.py")
GRAD_TITLE = "Gradient norm per layer during training, depth {depth}"
RATIO_TITLE = "‖F(x)‖ / ‖x‖ per block during training, depth {depth}"


@pytest.fixture(scope="module")
def recorded():
    result = rr.recorded_race()
    assert result is not None
    return result


def _run(result, arch, depth, seed):
    return next(
        r for r in result["runs"] if r["arch"] == arch and r["depth"] == depth and rr.run_seed(r, result) == seed
    )


def _cell(fig, trace_index, layer, step):
    trace = fig.data[trace_index]
    i, j = list(trace.y).index(layer), list(trace.x).index(step)
    return trace.z[i][j], trace.customdata[i][j]


@pytest.mark.parametrize("depth, seed", [(56, 0), (20, 2)])
def test_gradient_heatmap_cells_are_the_recorded_norms_on_a_log_scale(recorded, depth, seed):
    fig = rd.gradient_heatmap_figure(recorded, depth, seed)
    assert [t.name for t in fig.data] == [f"ResNet-{depth}", f"Plain-{depth}"]  # the twins side by side
    assert {t.coloraxis for t in fig.data} == {"coloraxis"}  # one colour scale for both
    checked = 0
    for index, arch in enumerate(("resnet", "plain")):
        run = _run(recorded, arch, depth, seed)
        assert list(fig.data[index].x) == [s["step"] for s in run["snapshots"]]
        for snap in run["snapshots"][:: max(1, len(run["snapshots"]) // 4)]:
            for layer in ("conv1", "layer1.0.conv1", "fc", list(snap["grad_norms"])[-2]):
                z, raw = _cell(fig, index, layer, snap["step"])
                assert raw == snap["grad_norms"][layer]
                assert z == pytest.approx(math.log10(snap["grad_norms"][layer]))  # the colour is log10(norm)
                checked += 1
    assert checked >= 32
    # The colour bar is labelled in norms at log10 positions, and spans both twins' values.
    bar = fig.layout.coloraxis.colorbar
    assert [float(t) for t in bar.ticktext] == pytest.approx([10**v for v in bar.tickvals], rel=1e-6)
    assert "log scale" in bar.title.text
    logs = [v for t in fig.data for row in t.z for v in row if v is not None]
    assert fig.layout.coloraxis.cmin == pytest.approx(min(logs)) and fig.layout.coloraxis.cmax == pytest.approx(
        max(logs)
    )


def test_ratio_heatmap_cells_are_the_recorded_ratios_centred_on_one(recorded):
    fig = rd.ratio_heatmap_figure(recorded, 56, 1)
    run = _run(recorded, "plain", 56, 1)
    snap = run["snapshots"][7]
    for block in ("layer1.0", "layer2.4", "layer3.8"):
        z, raw = _cell(fig, 1, block, snap["step"])
        assert raw == snap["ratios"][block] and z == pytest.approx(math.log10(raw))
    axis = fig.layout.coloraxis
    assert axis.cmin == pytest.approx(-axis.cmax)  # ratio 1 sits in the middle of the diverging scale
    # The chart's text alternative reads ratios, not their logarithms.
    lowest = min(v for s in run["snapshots"] for v in s["ratios"].values())
    assert f"from {lowest:.3g} at" in describe(fig)


def test_a_zero_or_missing_norm_is_left_blank_not_drawn_as_minus_infinity(recorded):
    result = copy.deepcopy(recorded)
    run = _run(result, "plain", 20, 0)
    run["snapshots"][0]["grad_norms"]["conv1"] = 0.0
    run["snapshots"][1]["grad_norms"]["conv1"] = None
    fig = rd.gradient_heatmap_figure(result, 20, 0)
    assert _cell(fig, 1, "conv1", 1)[0] is None and _cell(fig, 1, "conv1", 21)[0] is None
    assert all(math.isfinite(v) for t in fig.data for row in t.z for v in row if v is not None)


def test_the_explanation_is_computed_from_the_race(recorded):
    grads = rd.dynamics_grids(recorded, 56, "grad_norms", 0)
    ratios = rd.dynamics_grids(recorded, 56, "ratios", 0)
    plain = _run(recorded, "plain", 56, 0)["snapshots"][0]["grad_norms"]
    spread = plain["conv1"] / plain["layer3.8.conv2"]
    text = "\n".join(explanation(grads, ratios))
    assert f"Plain-56 at step 1: the gradient at the first layer is {spread:.0f}× the one at the last" in text
    assert spread > 3 and "does **not** vanish" in text  # with BatchNorm it grows toward the input here
    # Make the plain net's gradient vanish instead: the text follows the numbers.
    vanishing = copy.deepcopy(recorded)
    for snap in _run(vanishing, "plain", 56, 0)["snapshots"]:
        last = snap["grad_norms"]["layer3.8.conv2"]
        for k, name in enumerate(snap["grad_norms"]):
            if name != "fc":
                snap["grad_norms"][name] = last * 10 ** (-(55 - k) / 10)  # 10^5.5 smaller at the input
    grads = rd.dynamics_grids(vanishing, 56, "grad_norms", 0)
    text = "\n".join(explanation(grads, ratios))
    assert "does **not** vanish" not in text and "vanishes toward the input" in text
    assert "it shrinks toward the input" in text
    median = statistics.median(_run(recorded, "resnet", 56, 0)["snapshots"][-1]["ratios"].values())
    assert f"ResNet-56's median ‖F(x)‖/‖x‖ at step 400 is {median:.2f}" in text


# -- the page ----------------------------------------------------------------------------------------------------


def _page(session: dict | None = None, lang: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in (session or {}).items():
        at.session_state[k] = v
    at.run()
    at.switch_page("pages/training_race.py")
    if lang:
        at.query_params["lang"] = lang
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    """The page's captions and its charts' text alternatives."""
    return " ".join([c.value for c in at.caption] + chart_alts(at))


def test_the_recorded_race_shows_both_heatmaps_with_a_depth_picker_and_text(recorded):
    at = _page()
    titles = chart_titles(at)
    assert GRAD_TITLE.format(depth=56) in titles and RATIO_TITLE.format(depth=56) in titles
    depth = next(r for r in at.radio if r.key == "dynamics_depth")
    assert list(depth.options) == ["20", "56"]
    assert "How to read it" in " ".join(m.value for m in at.markdown)
    depth.set_value(20).run()
    assert GRAD_TITLE.format(depth=20) in chart_titles(at)
    # The chart's text alternative is written from the recorded numbers.
    runs = [_run(recorded, "plain", 20, 0)]
    highest = max(v for r in runs for s in r["snapshots"] for v in s["grad_norms"].values())
    assert f"to {highest:.3g} at" in _texts(at)


def test_a_loaded_race_shows_its_own_numbers_and_a_race_without_snapshots_a_note(recorded):
    mine = copy.deepcopy(recorded)
    mine["runs"] = [r for r in mine["runs"] if r["depth"] == 20]
    for snap in _run(mine, "plain", 20, 0)["snapshots"]:
        snap["grad_norms"]["conv1"] = 12345.0  # a number only this file has
    at = _page()
    at.radio(key="dynamics_depth").set_value(20).run()  # the recorded race's depth-20 heatmaps, kept for reruns
    uploader = next(u for u in at.get("file_uploader") if u.key == "race_upload")
    uploader.set_value(("mine.json", rr.race_to_json(mine).encode(), "application/json")).run()
    assert not at.exception
    assert at.selectbox(key="race_show").value == "loaded:mine.json"
    assert GRAD_TITLE.format(depth=20) in chart_titles(at)
    assert not [r for r in at.radio if r.key == "dynamics_depth"]  # one depth: no picker
    assert re.search(
        rf"Plain-20: gradient norm \(log scale\) from [^;]* to {re.escape(format_number(12345.0))} at \(\d+, conv1\)",
        _texts(at),
    )
    bare = copy.deepcopy(mine)
    for run in bare["runs"]:
        run["snapshots"] = []
    at = _page()  # a fresh session: its first loaded race is the bare one
    uploader = next(u for u in at.get("file_uploader") if u.key == "race_upload")
    uploader.set_value(("bare.json", json.dumps(bare).encode(), "application/json")).run()
    assert not at.exception and at.selectbox(key="race_show").value == "loaded:bare.json"
    assert not any("during training" in t for t in chart_titles(at))
    assert any("No snapshots yet for depth 20" in i.value for i in at.info)


@pytest.fixture(scope="module")
def tiny_data():
    tx, ty, _ = make_shapes(128, seed=TRAIN_SEED)
    vx, vy, _ = make_shapes(32, seed=TEST_SEED)
    return rr.RaceData("shapes", tx, ty, vx, vy, list(SHAPE_CLASSES), "tiny shapes")


def _tiny_race(data) -> rr.Race:
    config = rr.RaceConfig(
        depths=(8,),
        recipe=Recipe(steps=5000, batch_size=8, lr=0.05, warmup_steps=0),
        eval_every=0,
        snapshot_every=3,
        probe_size=8,
        seeds=1,
        engine="unfused",
        precision="fp32",
    )
    return rr.Race(config, data=data, scheduler=rr.RaceScheduler(1))


def test_a_live_race_shows_a_note_before_its_first_snapshot_then_its_heatmaps(tiny_data):
    import time

    race = _tiny_race(tiny_data)  # not started: no runs, no snapshots
    try:
        at = _page({"race_live": race, "race_show": "live"})
        assert not any("during training" in t for t in chart_titles(at))
        assert any("The heatmaps appear with the race's first snapshot" in i.value for i in at.info)
        race.start()
        end = time.monotonic() + 120
        while race.step < 8 and time.monotonic() < end:  # snapshots at steps 1, 4, 7
            time.sleep(0.05)
        race.pause()
        while race.status != "paused" and time.monotonic() < end:
            time.sleep(0.05)
        assert race.status == "paused" and not race.done
        at.run()
        assert not at.exception
        titles = chart_titles(at)
        assert GRAD_TITLE.format(depth=8) in titles and RATIO_TITLE.format(depth=8) in titles
        fig_steps = [s["step"] for s in race.runs[0].snapshots]
        assert fig_steps[:3] == [1, 4, 7]
        value = race.runs[1].snapshots[0]["grad_norms"]["conv1"]  # the plain twin's first layer at step 1
        grid = rd.dynamics_grids(race.to_dict(), 8, "grad_norms")["plain"]
        assert grid.values[0][0] == value
    finally:
        race.stop()
        race.join(30)


def test_the_section_speaks_chinese():
    at = _page(lang="zh")
    assert "训练动态一览" in [h.value for h in at.subheader]
    assert not any("How to read it" in m.value for m in at.markdown)


@pytest.mark.browser
def test_the_live_heatmaps_grow_while_the_race_trains(page, app_url):
    page.goto(app_url + "/training_race?lang=en&depths=8&steps=20000&batch=4")
    page.get_by_text("What to look for").first.wait_for()
    page.get_by_role("button", name="Start").click()
    columns = """() => Math.max(0, ...Array.from(document.querySelectorAll('.st-key-dynamics_grad .js-plotly-plot'))
        .map(d => ((d.data || [])[0] || {}).x?.length || 0))"""
    page.wait_for_function(f"({columns})() >= 2", timeout=240_000)  # snapshots at steps 1 and 21
    first = page.evaluate(columns)
    page.wait_for_function(f"({columns})() > {first}", timeout=120_000)  # redrawn as snapshots come
    assert page.get_by_text("Gradient norm per layer during training, depth 8").count()
    page.get_by_role("button", name="Stop").click()


def test_switching_to_a_race_of_other_depths_and_seeds_forgets_the_old_choice(recorded):
    other = copy.deepcopy(recorded)
    for run in other["runs"]:
        run["depth"] = {20: 8, 56: 14}[run["depth"]]
        run["seed"] += 5
    at = _page()
    at.radio(key="dynamics_depth").set_value(20).run()
    at.selectbox(key="dynamics_seed").set_value(2).run()
    uploader = next(u for u in at.get("file_uploader") if u.key == "race_upload")
    uploader.set_value(("other.json", rr.race_to_json(other).encode(), "application/json")).run()
    assert not at.exception
    assert list(at.radio(key="dynamics_depth").options) == ["8", "14"]
    assert at.selectbox(key="dynamics_seed").value == 5
    assert GRAD_TITLE.format(depth=14) in chart_titles(at)
