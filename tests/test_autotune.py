"""A race measures which engine and precision train it fastest here, keeps the fastest and remembers it."""

import threading
import time
from dataclasses import replace

import pytest
import torch

import resnet_viz.device as devices
import resnet_viz.race as rr
from resnet_viz.data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from resnet_viz.race import autotune, engine
from resnet_viz.race.autotune import EngineChoice, candidate_name, choose_engine
from resnet_viz.race.engine import measure_candidate
from resnet_viz.training import Recipe

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    tx, ty, _ = make_shapes(64, seed=TRAIN_SEED)
    vx, vy, _ = make_shapes(16, seed=TEST_SEED)
    return rr.RaceData("shapes", tx[:, :, ::2, ::2], ty, vx[:, :, ::2, ::2], vy, list(SHAPE_CLASSES), "tiny")


@pytest.fixture(autouse=True)
def fresh_memory():
    autotune.forget_choices()
    yield
    autotune.forget_choices()


def config(steps=200, **kw):
    kw.setdefault("seeds", 2)
    return rr.RaceConfig(
        depths=(8,), recipe=Recipe(steps=steps, batch_size=8, lr=0.05, warmup_steps=0), image_size=16, **kw
    )


def fake_times(times):
    calls = []

    def measure(cfg, fused, precision):
        calls.append((fused, precision))
        value = times[(fused, precision)]
        if isinstance(value, list):  # one time per measurement, in turn
            value = value[sum(c == (fused, precision) for c in calls) - 1]
        if isinstance(value, Exception):
            raise value
        return value

    return measure, calls


def test_the_fastest_candidate_wins_and_is_remembered_in_the_process_and_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    measure, calls = fake_times({(False, "fp32"): 0.5, (False, "bf16"): 0.6, (True, "fp32"): 0.3, (True, "bf16"): 0.4})
    choice = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert (choice.fused, choice.precision, choice.how) == (True, "fp32", "measured")
    assert len(calls) == 4 and choice.seconds_per_step[candidate_name(True, "fp32")] == 0.3
    assert choice.speedup == pytest.approx(0.6 / 0.3)
    again = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert len(calls) == 4 and again.how == "remembered" and (again.fused, again.precision) == (True, "fp32")
    autotune.forget_choices()  # a new process: the file remembers
    from_file = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert len(calls) == 4 and from_file.how == "remembered" and from_file.seconds_per_step == choice.seconds_per_step
    other_shape = choose_engine(config(seeds=3), CPU, cache_dir=str(tmp_path), measure=measure)
    assert len(calls) == 8 and other_shape.how == "measured"


def test_unfused_float32_wins_where_it_is_fastest_and_a_failing_candidate_is_left_out(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    measure, _calls = fake_times(
        {(False, "fp32"): 0.2, (False, "bf16"): 0.3, (True, "fp32"): RuntimeError("no"), (True, "bf16"): 0.25}
    )
    choice = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert (choice.fused, choice.precision) == (False, "fp32")
    assert candidate_name(True, "fp32") not in choice.seconds_per_step and len(choice.seconds_per_step) == 3


def test_candidates_close_to_the_fastest_are_timed_again_and_keep_their_faster_time(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    # fused fp32 leads by 8 % on the first timing (within the margin), then shows its real speed
    measure, calls = fake_times(
        {(False, "fp32"): [0.54, 0.45], (False, "bf16"): 0.9, (True, "fp32"): [0.50, 0.60], (True, "bf16"): 0.8}
    )
    choice = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert (choice.fused, choice.precision) == (False, "fp32")
    assert choice.seconds_per_step == {"unfused fp32": 0.45, "unfused bf16": 0.9, "fused fp32": 0.5, "fused bf16": 0.8}
    assert calls.count((False, "bf16")) == 1 and calls.count((True, "bf16")) == 1  # far behind: timed once
    assert calls.count((False, "fp32")) == 2 and calls.count((True, "fp32")) == 2
    autotune.forget_choices()
    measure, calls = fake_times({(False, "fp32"): 0.5, (False, "bf16"): 0.9, (True, "fp32"): 0.7, (True, "bf16"): 0.8})
    choose_engine(config(), CPU, cache_dir=str(tmp_path / "clear"), measure=measure)
    assert len(calls) == 4  # a clear winner is not timed again


def test_nothing_is_measured_for_one_candidate_a_short_race_or_a_stopped_one(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    measure, calls = fake_times({(False, "fp32"): 0.2, (True, "fp32"): 0.1})
    fixed = choose_engine(config(engine="unfused"), CPU, cache_dir=str(tmp_path), measure=measure)
    assert fixed.how == "fixed" or fixed.how == "default"
    assert not fixed.fused and calls == []  # unfused, float32 (no native bfloat16): one candidate
    short = choose_engine(config(steps=20), CPU, cache_dir=str(tmp_path), measure=measure)
    assert short.how == "default" and calls == []
    stop = threading.Event()
    stop.set()
    stopped = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure, stop=stop)
    assert stopped.how == "default" and calls == []
    measured = choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure)
    assert measured.fused and measured.precision == "fp32" and len(calls) == 2  # no bfloat16 candidate


def test_a_broken_cache_file_is_measured_again_and_rewritten(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    (tmp_path / autotune.CACHE_FILE).write_text("{not json")
    measure, calls = fake_times({(False, "fp32"): 0.2, (True, "fp32"): 0.1})
    assert choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure).how == "measured"
    autotune.forget_choices()
    assert choose_engine(config(), CPU, cache_dir=str(tmp_path), measure=measure).how == "remembered"
    assert len(calls) == 2


def test_measuring_a_candidate_trains_a_throwaway_race_of_the_same_nets(data, monkeypatch):
    steps = []
    original = rr.Race._train_steps

    def spy(self, crew, groups):
        original(self, crew, groups)
        steps.append((self.fused, self.precision, self.step, len(self.runs)))

    monkeypatch.setattr(rr.Race, "_train_steps", spy)
    for fused in (False, True):
        seconds = measure_candidate(config(), CPU, data, fused, "fp32")
        assert 0 < seconds < 30
    total = autotune.WARMUP_STEPS + autotune.TIMED_STEPS + 1
    assert steps == [(False, "fp32", total, 4), (True, "fp32", total, 4)]


def fake_race_measurement(monkeypatch, cache, *, fused_s: float, unfused_s: float) -> list[bool]:
    """Races measure float32 candidates with these seconds per step (cache in ``cache``); returns, as it grows,
    which engines were measured (True: fused)."""
    monkeypatch.setenv(autotune.CACHE_ENV, str(cache))
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    measured = []

    def measure(cfg, device, data_, fused, precision, **_kw):
        measured.append(fused)
        return fused_s if fused else unfused_s

    monkeypatch.setattr(engine, "measure_candidate", measure)
    return measured


def test_a_long_race_trains_with_the_measured_choice_and_reports_it(data, tmp_path, monkeypatch):
    # the fused engine measures faster: the race must train fused
    measured = fake_race_measurement(monkeypatch, tmp_path, fused_s=0.1, unfused_s=0.2)
    race = rr.Race(replace(config(steps=120), eval_every=0, snapshot_every=0), data=data)
    race.start()
    end = time.time() + 60
    while race.step < 2 and not race.done and time.time() < end:
        time.sleep(0.05)
    race.stop()
    assert race.join(30)
    assert measured == [False, True]
    assert race.fused and race.engine_choice.how == "measured" and race.engine_choice.fused
    assert race.to_dict()["engine_choice"]["seconds_per_step"] == {"unfused fp32": 0.2, "fused fp32": 0.1}
    assert isinstance(race.engine_choice, EngineChoice)


def test_the_choice_is_told_with_every_measured_candidate_in_the_reader_s_language():
    from resnet_viz.i18n import language
    from resnet_viz.race.autotune import describe_choice

    choice = EngineChoice(
        False, "bf16", "measured", {"unfused bf16": 0.075, "fused bf16": 0.108, "unfused fp32": 0.118}
    ).to_dict()
    text = describe_choice(choice)
    assert text.startswith("unfused engine, bfloat16: the fastest of 3 ways")
    assert all(f"{ms} ms" in text for ms in (75, 108, 118))
    with language("zh"):
        zh = describe_choice(choice)
        assert "非融合引擎" in zh and "fused" not in zh and "108 ms" in zh
        assert "沿用" in describe_choice({**choice, "how": "remembered"})
    assert "not measured" in describe_choice({**choice, "how": "default", "seconds_per_step": {}})
    assert describe_choice(None) == ""
    with language("zh"):
        assert "重新测量" in describe_choice({**choice, "forgotten": True})
    assert "measures again" in describe_choice({**choice, "forgotten": True})


def test_a_race_much_faster_than_its_measurement_forgets_it_and_the_next_race_measures_again(tmp_path):
    measure, calls = fake_times({(False, "fp32"): 0.2, (True, "fp32"): 0.1})  # fused measured (busy) faster
    cfg = config(precision="fp32")
    choice = choose_engine(cfg, CPU, cache_dir=str(tmp_path), measure=measure)
    assert choice.fused and len(calls) == 2
    steps = autotune.MIN_STEPS_TO_MEASURE
    # slower than measured (the machine is busy now), or about as fast: the choice stays
    assert not autotune.review_choice(cfg, CPU, choice, [0.3] * steps, cache_dir=str(tmp_path))
    assert not autotune.review_choice(cfg, CPU, choice, [0.08] * steps, cache_dir=str(tmp_path))
    assert not autotune.review_choice(cfg, CPU, choice, [0.01] * (steps - 1), cache_dir=str(tmp_path))  # too short
    autotune.forget_choices()
    assert choose_engine(cfg, CPU, cache_dir=str(tmp_path), measure=measure).how == "remembered"
    # the race ran its steps at 1/2 of the measured time: the measurement was slowed by something else
    assert autotune.review_choice(cfg, CPU, choice, [0.05] * steps, cache_dir=str(tmp_path))
    again = choose_engine(cfg, CPU, cache_dir=str(tmp_path), measure=measure)
    assert again.how == "measured" and len(calls) == 4
    autotune.forget_choices()  # a new process: the file was rewritten with the new measurement
    assert choose_engine(cfg, CPU, cache_dir=str(tmp_path), measure=measure).how == "remembered"
    assert not autotune.review_choice(
        cfg, CPU, EngineChoice(True, "fp32", "default"), [0.01] * steps, cache_dir=str(tmp_path)
    )


def test_a_finished_race_reviews_its_choice_and_reports_that_it_forgot_it(data, tmp_path, monkeypatch):
    # far slower than any real step of these tiny nets
    measured = fake_race_measurement(monkeypatch, tmp_path, fused_s=60.0, unfused_s=50.0)
    cfg = replace(config(steps=autotune.MIN_STEPS_TO_MEASURE), eval_every=0, snapshot_every=0)
    race = rr.Race(cfg, data=data)
    race.run_here()
    assert race.status == "finished" and measured == [False, True]
    assert race.choice_forgotten and race.to_dict()["engine_choice"]["forgotten"] is True
    rr.Race(cfg, data=data).run_here()
    assert measured == [False, True, False, True]  # measured again, not remembered


def test_pause_holds_the_measurement_too_and_resume_goes_on(data, tmp_path, monkeypatch):
    monkeypatch.setenv(autotune.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    race = rr.Race(replace(config(steps=autotune.MIN_STEPS_TO_MEASURE), eval_every=0, snapshot_every=0), data=data)
    race.start()
    race.pause()  # queued: the throwaway races that measure share the pause
    time.sleep(3)  # unpaused, measuring these tiny nets takes well under a second
    assert race.engine_choice is None and race.step == 0 and race.paused
    race.resume()
    end = time.time() + 60
    while race.step < 1 and not race.done and time.time() < end:
        time.sleep(0.05)
    race.stop()
    assert race.join(30)
    assert race.engine_choice.how == "measured" and race.step >= 1
