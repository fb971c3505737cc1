"""The Training race page on a shared server: joining, finished races reused, the stop and pause rules, the queue's
note, the budget, the race's link and the view's QR code (Streamlit's AppTest; the other visitor is the registry's
viewer "bob")."""

import base64
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import warnings
from streamlit.testing.v1 import AppTest

from resnet_viz import race as rr
from resnet_viz.race import estimate as est
from resnet_viz.training import Recipe

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def registry(race_registry):
    return race_registry


def page_config(steps: int, batch: int = 8) -> rr.RaceConfig:
    """The race the page trains with depths 8, the given steps and batch, and the other settings at their default
    (what Start makes of ``?depths=8&steps=..&batch=..``)."""
    base = rr.quick_recipe()
    recipe = Recipe(
        steps=steps,
        batch_size=batch,
        optimizer=base.optimizer,
        lr=base.lr,
        momentum=base.momentum,
        weight_decay=base.weight_decay,
        warmup_steps=base.warmup_steps,
        schedule=base.schedule,
        seed=base.seed,
    )
    return rr.RaceConfig(depths=(8,), recipe=recipe, seeds=3)


def open_race_page(query: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/training_race.py")
    at.query_params = {"lang": "en", **query}
    at.run()
    assert not at.exception, at.exception
    return at


def sidebar_link(at: AppTest):
    """The sidebar's block with the view's link (presenter mode)."""
    return next(c for c in at.sidebar.children.values() if getattr(c, "key", None) == "sidebar-link")


def press(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    return " ".join(
        [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info] + warnings(at)
    )


def wait(condition, timeout=120.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_start_joins_the_race_of_the_same_settings_that_trains(registry):
    theirs = registry.open(page_config(5000), "cpu", "bob")
    at = open_race_page({"depths": "8", "steps": "5000", "batch": "8"})
    press(at, "Start")
    assert at.session_state["race_live"] is theirs.race  # the same race, not a second training
    assert registry.started == 1 and registry.viewers(theirs.id) == 2
    assert "Watching this race: you and 1 more." in texts(at)
    assert at.query_params["race"] == theirs.id


def test_stop_ends_only_the_visitors_view_while_others_watch(registry):
    theirs = registry.open(page_config(5000), "cpu", "bob")
    at = open_race_page({"depths": "8", "steps": "5000", "batch": "8"})
    press(at, "Start")
    wait(lambda: theirs.race.step >= 1)
    press(at, "Pause")
    assert not theirs.race.paused
    assert "only a race's only viewer can pause it" in texts(at)
    press(at, "Stop")
    time.sleep(0.5)
    assert not theirs.race.done and registry.viewers(theirs.id) == 1  # Bob's race trains on
    shown = at.selectbox(key="race_show").value
    assert "(you left at step" in shown and shown in at.session_state["race_results"]
    registry.leave("bob")
    assert theirs.race.join(30) and theirs.race.status == "stopped"  # the last viewer left


def test_pause_and_stop_act_for_the_only_viewer(registry):
    at = open_race_page({"depths": "8", "steps": "5000", "batch": "8"})
    press(at, "Start")
    race = at.session_state["race_live"]
    press(at, "Pause")
    assert race.paused
    press(at, "Resume")
    press(at, "Stop")
    assert race.join(30) and race.status == "stopped"


def test_a_finished_race_opens_at_once_with_where_and_when_it_trained(registry):
    config = page_config(10)
    first = registry.open(config, "cpu", "bob")
    wait(lambda: first.id in registry.store)
    at = open_race_page({"depths": "8", "steps": "10", "batch": "8"})
    press(at, "Start")
    assert registry.started == 1  # nothing trained again
    assert "race_live" not in at.session_state
    assert at.selectbox(key="race_show").value == "race:" + first.id
    trained = registry.store.get(first.id)["trained"]
    caption = next(c.value for c in at.caption if c.value.startswith("Trained on this server on"))
    assert trained["at"][:10] in caption and trained["at"][11:16] + " UTC" in caption
    assert f"in {trained['wall_s']:.0f} s" in caption and "engine" in caption
    assert "Depth 8 (.safetensors)" in {b.label for b in at.get("download_button")}


def test_the_race_link_opens_it_for_anyone(registry):
    done = registry.open(page_config(10), "cpu", "cid")
    wait(lambda: done.id in registry.store)
    at = open_race_page({"race": done.id})
    assert at.selectbox(key="race_show").value == "race:" + done.id
    live = registry.open(page_config(5000), "cpu", "bob")
    at = open_race_page({"race": live.id})
    assert at.session_state["race_live"] is live.race and registry.viewers(live.id) == 2
    at = open_race_page({"race": "0123456789ab"})
    assert any("No race with the link `race=0123456789ab` is on this server" in w for w in warnings(at))


def test_a_queued_race_tells_its_place_and_estimated_start(registry):
    ahead = est.Estimate(seconds=1800.0, train_s=1800.0, prepare_s=0.0, step_s=0.36, how="measured")
    theirs = registry.open(page_config(5000), "cpu", "bob", estimate=ahead)
    wait(lambda: theirs.race.step >= 2)
    registry.times.record(page_config(300), "cpu", 0.05, 1.0, 300)
    at = open_race_page({"depths": "8", "steps": "300", "batch": "8"})
    press(at, "Start")
    note = next(i.value for i in at.info if i.value.startswith("Waiting for a trainer"))
    assert "place 1 in the queue of races on this server" in note and "Other classes" not in note
    p = theirs.race.progress()
    left = p["elapsed_s"] / p["step"] * (p["total"] - p["step"])  # the race ahead, from its measured steps
    found = re.search(r"It should start in about (?:(\d+) h )?(\d+) (min|s) \(at \d\d:\d\d UTC\)", note)
    assert found, note
    hours, value, unit = found.groups()
    told = int(hours or 0) * 3600 + int(value) * (60 if unit == "min" else 1)
    assert told == pytest.approx(left, rel=0.25, abs=60)
    assert "Races on this server now: 1 training, 1 waiting." in texts(at)


@pytest.mark.parametrize(
    "query, lang",
    [
        ({"depths": "110", "steps": "20000", "batch": "1024"}, "en"),  # no number of steps fits
        ({"depths": "110", "steps": "20000", "batch": "1024"}, "zh"),
        ({"depths": "56", "steps": "20000", "batch": "32"}, "en"),  # fewer steps fit
    ],
)
def test_a_race_over_the_budget_is_refused_with_what_to_reduce(registry, monkeypatch, query, lang):
    monkeypatch.setenv(est.BUDGET_ENV, "600")
    registry.times.record(page_config(400, batch=32), "cpu", 0.02, 5.0, 400)  # measured here: 20 ms a step
    at = open_race_page({**query, "lang": lang})
    config = page_config(int(query["steps"]), batch=int(query["batch"]))
    config.depths = (int(query["depths"]),)
    estimate = est.estimate_race(config, "cpu", times=registry.times)
    verdict = est.check_budget(estimate, 600, config.recipe.steps)
    assert not verdict.fits
    notes = [w for w in warnings(at) if "10 min" in w or "10 分钟" in w]
    assert len(notes) == 1
    note = notes[0]
    if lang == "zh":
        assert "超过" in note and "10 分钟" in note and "This race" not in note
    elif verdict.max_steps >= 10:
        assert "more than the 10 min a visitor's race may take here" in note
        assert f"Reduce the steps to at most {verdict.max_steps}," in note
    else:
        assert "Fewer steps are not enough: reduce the batch size, the depths" in note
    start = next(b for b in at.button if b.label in ("Start", "开始"))
    assert start.disabled
    assert registry.started == 0  # nothing trains
    if lang == "en":  # (AppTest words a rerun's select boxes in English)
        monkeypatch.setenv(est.BUDGET_ENV, "0")  # the operator lifts the limit
        at.run()
        assert (
            not [w for w in warnings(at) if "10 min" in w]
            and not next(b for b in at.button if b.label == "Start").disabled
        )


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_fresh_server_refuses_a_race_far_over_the_budget_without_waiting_for_its_probe(registry, monkeypatch, lang):
    monkeypatch.setenv(est.BUDGET_ENV, "600")
    probed = []
    monkeypatch.setattr(est, "measure_probe", lambda config, device: probed.append(config) or 0.02)
    at = open_race_page({"depths": "110", "steps": "20000", "batch": "1024", "lang": lang})
    notes = [w for w in warnings(at) if "10 min" in w or "10 分钟" in w]
    assert len(notes) == 1
    config = page_config(20000, batch=1024)
    config.depths = (110,)
    floor = est.floor_estimate(config, "cpu")
    hours = int(floor.seconds // 3600)
    if lang == "en":
        assert f"would take at least {hours} h" in notes[0] and "Reduce the steps to fewer than" in notes[0]
    else:
        assert f"至少 {hours} 小时" in notes[0]
    assert all(c.recipe.steps == est.PROBE_STEPS for c in probed)  # at most the server's own warm-up probe ran
    assert registry.started == 0


def test_presenter_mode_shows_the_view_link_as_a_qr_code_that_decodes_back(registry, monkeypatch):
    import ui.share

    made = []
    real = ui.share.qr_png

    def spy(text, *args, **kw):
        made.append((text, real(text, *args, **kw)))
        return made[-1][1]

    monkeypatch.setattr(ui.share, "qr_png", spy)
    done = registry.open(page_config(10), "cpu", "bob")
    wait(lambda: done.id in registry.store)
    at = open_race_page({"race": done.id, "present": "1"})
    link_block = sidebar_link(at)
    drawn = [e for e in link_block.children.values() if e.type == "html"][0].proto.body
    caption = [e for e in link_block.children.values() if e.type == "caption"][0].value
    text, png = made[-1]
    assert caption == f"Scan to open this view: {text}" and f"race={done.id}" in text and "present" not in text
    assert f'alt="Scan to open this view: {text.replace("&", "&amp;")}"' in drawn  # its text alternative
    shown = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", drawn).group(1))
    image = cv2.imdecode(np.frombuffer(shown, np.uint8), cv2.IMREAD_GRAYSCALE)
    decoded, _points, _code = cv2.QRCodeDetector().detectAndDecode(image)
    assert decoded == text  # the image the sidebar draws, decoded back to the view's link
    assert image.shape[0] >= 400 and "width: 100%" in drawn  # sharp at the sidebar's full width on a projector
    plain = open_race_page({"race": done.id})
    assert not any(getattr(c, "key", None) == "sidebar-link" for c in plain.sidebar.children.values())


@pytest.mark.parametrize("found, listens", [("192.168.1.23", None), (None, None), ("192.168.1.23", "127.0.0.1")])
def test_a_loopback_link_becomes_the_address_the_class_can_open_or_the_sidebar_says_why_not(
    registry, monkeypatch, found, listens
):
    """The teacher browses the server as localhost: students' phones need the machine's network address."""
    import streamlit

    import ui.share

    monkeypatch.setattr(ui.share, "network_ip", lambda: found)
    before = streamlit.config.get_option("server.address")
    streamlit.config.set_option("server.address", listens)
    try:
        at = open_race_page({"present": "1", "depths": "8"})
    finally:
        streamlit.config.set_option("server.address", before)
    link_block = sidebar_link(at)
    caption = [e for e in link_block.children.values() if e.type == "caption"][0].value
    alerts = [e.value for e in link_block.children.values() if e.type == "alert"] + [
        w for w in warnings(at) if "Network URL" in w
    ]
    if found and not listens:  # the server listens on every interface: the link names the network address
        assert caption.startswith("Scan to open this view: http://192.168.1.23:8501/training_race?")
        assert not alerts
    else:  # no network address, or a server on loopback only: the link stays and the sidebar says why it fails
        assert caption.startswith("Scan to open this view: http://localhost:8501/training_race?")
        assert any("Students' devices cannot open this link" in a for a in alerts)


def test_network_ip_reads_an_address_of_this_machine():
    import ipaddress

    import ui.share

    ip = ui.share.network_ip()
    if ip is not None:  # a machine without a network has none
        address = ipaddress.ip_address(ip)
        assert not address.is_loopback and not address.is_link_local
