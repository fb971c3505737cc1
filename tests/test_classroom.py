"""Many users on one server: shared models stay untouched, uploads are private and safe."""

import os
import threading

import numpy as np
import pytest
import torch
from conftest import EvilPickle
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz.data import TEST_SEED

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def _in_threads(fn, args_list, repeats=2):
    """Run fn(*args) for every args in many threads at once; return the last result of each."""
    results = [None] * len(args_list)
    errors = []
    barrier = threading.Barrier(len(args_list))

    def work(i, args):
        try:
            barrier.wait()
            for _ in range(repeats):
                results[i] = fn(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, a)) for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def shared():
    resnet, plain, _ = rv.load_bundled("shapes-20")
    images, labels, _ = rv.make_shapes(64, seed=TEST_SEED)
    return resnet, plain, images, labels


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_untouched(model, before, training=False):
    assert model.training == training
    assert all(p.grad is None for p in model.parameters())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_gradient_norms_from_many_threads_equal_sequential(shared):
    resnet, _, images, labels = shared
    before = _state(resnet)
    batches = [(resnet, images[i * 8 : (i + 1) * 8], labels[i * 8 : (i + 1) * 8]) for i in range(6)]
    sequential = [rv.gradient_norms(*b) for b in batches]
    parallel = _in_threads(rv.gradient_norms, batches)
    assert parallel == sequential
    _assert_untouched(resnet, before)


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_block_probes_and_lesions_from_many_threads_equal_sequential(shared):
    resnet, plain, images, labels = shared
    before = _state(resnet)

    def probe(model, x):
        entries = rv.block_contributions(model, x)
        return [(e["residual_norm"], e["identity_norm"], e["cosine"]) for e in entries]

    jobs = [(m, images[i * 4 : (i + 1) * 4]) for i in range(4) for m in (resnet, plain)]
    assert _in_threads(probe, jobs) == [probe(*j) for j in jobs]
    lesion_jobs = [(resnet, images, labels)] * 3 + [(plain, images, labels)] * 3
    assert _in_threads(rv.lesion_accuracies, lesion_jobs, repeats=1) == [rv.lesion_accuracies(*j) for j in lesion_jobs]
    _assert_untouched(resnet, before)


def test_mixed_probes_on_one_model_do_not_disturb_each_other(shared):
    """Gradient norms switch BatchNorm to batch statistics for a moment; Grad-CAM must never see that."""
    resnet, _, images, labels = shared
    expected = [rv.explain(resnet, images[i : i + 1], topk=2) for i in range(4)]

    def mixed(i):
        if i % 2:
            return rv.gradient_norms(resnet, images[:16], labels[:16])
        return rv.explain(resnet, images[i // 2 : i // 2 + 1], topk=2)

    results = _in_threads(mixed, [(i,) for i in range(8)], repeats=3)
    for i in range(0, 8, 2):
        np.testing.assert_array_equal(results[i].heatmaps, expected[i // 2].heatmaps)
    assert not resnet.training


def _upload_checkpoint(at, name, data):
    uploader = next(u for u in at.file_uploader if u.label.startswith("Checkpoint"))
    uploader.set_value((name, data, "application/octet-stream")).run()
    return at


def test_uploaded_checkpoint_is_offered_and_explained(tmp_path):
    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=3, seed=5)
    path = rv.save_twins(
        tmp_path / "mine.safetensors",
        resnet,
        plain,
        {"build": {"arch": "cifar", "depth": 8, "num_classes": 3, "seed": 5}, "class_names": ["apple", "pear", "plum"]},
    )
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/explain.py")
    at.run()
    _upload_checkpoint(at, "mine.safetensors", path.read_bytes())
    assert not at.exception and any("Loaded CIFAR ResNet-8" in s.value for s in at.sidebar.success)
    model_box = at.selectbox(key="explain-model")
    assert model_box.options[-1].startswith("Your checkpoint")
    model_box.select_index(len(model_box.options) - 1).run()
    assert not at.exception and len(at.get("plotly_chart")) == 2
    assert at.selectbox(key="explain-class").value in ("apple", "pear", "plum")


def test_malicious_checkpoint_upload_is_refused_in_the_app(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"conv1.weight": EvilPickle()}, evil)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    _upload_checkpoint(at, "evil.pt", evil.read_bytes())
    assert not at.exception
    assert at.sidebar.error and "Refused" in at.sidebar.error[0].value
    assert not marker.exists()


def test_uploaded_checkpoint_on_gradient_flow_and_residual_pages(tmp_path):
    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=8, seed=6)
    path = rv.save_twins(
        tmp_path / "eight.safetensors",
        resnet,
        plain,
        {"build": {"arch": "cifar", "depth": 8, "num_classes": 8, "seed": 6}},
    )
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    _upload_checkpoint(at, "eight.safetensors", path.read_bytes())
    at.switch_page("pages/gradient_flow.py")
    at.run()
    assert not at.exception
    assert any(h.value == "Your checkpoint" for h in at.header)
    at.switch_page("pages/residual_vs_identity.py")
    at.run()
    box = at.selectbox(key="residual_model")
    assert box.options[-1].startswith("Your checkpoint")
    box.set_value(box.options[-1]).run()
    assert not at.exception
    assert at.selectbox(key="residual_model").value.startswith("Your checkpoint")
    assert len(at.get("plotly_chart")) >= 3


def test_the_last_viewer_leaving_ends_the_race_thread_within_seconds(race_registry):
    import time

    from resnet_viz import race as rr
    from resnet_viz.training import Recipe

    config = rr.RaceConfig(
        depths=(8,),
        recipe=Recipe(steps=10_000, batch_size=8, lr=0.01),
        train_size=64,
        test_size=16,
        eval_every=1000,
        snapshot_every=1000,
    )
    race = race_registry.open(config, "cpu", "ann").race
    deadline = time.time() + 60
    while not any(r["steps_done"] for r in race.to_dict()["runs"]) and time.time() < deadline:
        time.sleep(0.05)
    assert not race.done
    started = time.time()
    race_registry.leave("ann")  # a closed tab: the session's release calls this
    assert race.join(5) and race.done
    assert time.time() - started < 5


@pytest.mark.browser
@pytest.mark.slow
def test_a_closed_tab_frees_its_trainer_for_the_next_student(browser, monkeypatch):
    """One trainer on the server: a second student's race waits while the first tab trains, and starts once
    that tab is closed (Streamlit releases the closed session, which stops its race)."""
    from conftest import running_app

    monkeypatch.setenv("RESNET_VIZ_MAX_RACES", "1")
    monkeypatch.setenv("STREAMLIT_SERVER_DISCONNECTED_SESSION_TTL", "1")
    long_race = "/training_race?depths=20&steps=20000"
    with running_app() as url:
        first = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = first.new_page()
        page.set_default_timeout(120_000)
        page.goto(url + long_race)
        page.get_by_role("button", name="Start").click(no_wait_after=True)
        page.get_by_text("images/s").first.wait_for()

        second = browser.new_context(viewport={"width": 1400, "height": 1000})
        other = second.new_page()
        other.set_default_timeout(120_000)
        other.goto(url + long_race.replace("20000", "19990"))  # other settings: another race, not the same one
        other.get_by_role("button", name="Start").click(no_wait_after=True)
        other.get_by_text("Waiting for a trainer").wait_for()  # the first tab holds the only trainer

        first.close()  # the student closes the tab
        other.get_by_text("images/s").first.wait_for(timeout=60_000)  # the second race trains now
        assert not other.get_by_text("Waiting for a trainer").is_visible()
        other.get_by_role("button", name="Stop").click()
        second.close()


@pytest.mark.slow  # a server, two visitors and a race in a subprocess: up to minutes where the race measures first
def test_a_session_that_leaves_releases_its_model_its_race_and_its_place_in_line():
    """Two visitors on a real server (tests/leaving_sessions.py): one uploads twins and starts a race, one waits
    for a work slot. Both close their tabs; the server keeps none of it and computes nothing for them."""
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "leaving_sessions.py")
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=420)
    lines = [line for line in out.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads(lines[-1][len("REPORT ") :])
    assert "error" not in report, report
    assert report["a_errors"] == []
    # What they held while there ...
    # (A's one race counts once, not the engine measurement's throwaway races: report["throwaway_races_seen"].)
    assert report["a_uploaded_models"] == 1 and report["a_running_races"] == 1 and report["race_threads"]
    assert report["b_waiting"] == 1
    # ... and what is left once they left.
    assert report["uploaded_models_after_leaving"] == 0
    assert report["uploaded_nets_still_alive"] == 0, "something still holds the uploaded twins"
    assert report["races_running_after_leaving"] == 0 and report["race_status_after_leaving"] == ["stopped"]
    assert report["race_threads_after_leaving"] == []
    assert report["waiting_after_leaving"] == 0 and report["b_left_line_s"] < 5
    assert report["slots_active_with_ours"] == report["slots_held_here"]  # B took none of them
    assert report["slots_active_after_leaving"] == 0, "a slot is still taken for a visitor who left"
