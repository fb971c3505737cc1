"""One training per setting: the registry, the finished-race store, the queue's estimates and the budget."""

import time
from dataclasses import replace

import pytest

from resnet_viz import race as rr
from resnet_viz.race import estimate as est
from resnet_viz.race.registry import RaceRegistry, race_id
from resnet_viz.race.store import FinishedRaces
from resnet_viz.training import Recipe


def tiny(steps: int = 6, **kw) -> rr.RaceConfig:
    recipe = Recipe(steps=steps, batch_size=8, lr=0.01, warmup_steps=0, seed=kw.pop("seed", 0))
    return rr.RaceConfig(
        depths=kw.pop("depths", (8,)),
        recipe=recipe,
        train_size=64,
        test_size=16,
        eval_every=0,
        snapshot_every=kw.pop("snapshot_every", 3),
        seeds=1,
        precision="fp32",
        **kw,
    )


@pytest.fixture
def registry(tmp_path):
    times = est.StepTimes(str(tmp_path / "cache"))
    return RaceRegistry(FinishedRaces(tmp_path / "races"), rr.RaceScheduler(1), times)


def wait(condition, timeout=120.0):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def stored(registry, rid):
    wait(lambda: rid in registry.store and rid not in registry.live_ids())
    return registry.store.get(rid)


def test_the_id_follows_everything_that_decides_the_curves():
    base = tiny()
    assert race_id(base, "cpu") == race_id(tiny(), "cpu")  # the same settings: the same race
    others = [
        tiny(steps=7),
        tiny(seed=1),
        tiny(depths=(14,)),
        replace(base, dataset="shapes"),
        replace(base, train_size=65),
        replace(base, image_size=32),
        replace(base, precision="auto"),
        replace(base, engine="fused"),
        replace(base, seeds=2),
    ]
    ids = {race_id(c, "cpu") for c in others}
    assert race_id(base, "cpu") not in ids and len(ids) == len(others)
    assert race_id(base, "cpu") != race_id(base, "meta")


def test_a_second_viewer_joins_the_training_race_and_sees_it_from_step_0(registry):
    first = registry.open(tiny(steps=3000), "cpu", "ann")
    assert first.kind == "started"
    wait(lambda: first.race.step >= 3)
    second = registry.open(tiny(steps=3000), "cpu", "bob")
    assert second.kind == "joined" and second.race is first.race and second.id == first.id
    assert registry.started == 1 and registry.viewers(first.id) == 2
    history = second.race.to_dict()["runs"][0]["history"]
    assert history[0]["step"] == 1 and len(history) >= 3  # the curves from the start, not from the join
    registry.leave("ann")
    registry.leave("bob")
    assert first.race.join(30)


def test_a_finished_race_is_reused_and_survives_a_restart(registry, tmp_path):
    opened = registry.open(tiny(), "cpu", "ann")
    result = stored(registry, opened.id)
    assert result["trained"]["id"] == opened.id and result["trained"]["where"] == "server"
    assert result["status"] == "finished" and [len(r["history"]) for r in result["runs"]] == [6, 6]
    again = registry.open(tiny(), "cpu", "bob")
    assert again.kind == "finished" and again.race is None and again.result["trained"]["at"] == result["trained"]["at"]
    assert registry.started == 1  # nothing trained again
    assert set(registry.store.twins(opened.id)) == {8}  # the twins' download
    restarted = RaceRegistry(FinishedRaces(tmp_path / "races"), rr.RaceScheduler(1), registry.times)
    assert restarted.open(tiny(), "cpu", "cid").kind == "finished"
    assert restarted.find(opened.id, "dan").result["trained"]["id"] == opened.id  # the short link
    assert restarted.find("0123456789ab", "dan") is None


def test_the_store_evicts_the_least_recently_used_race_by_count_and_bytes(tmp_path):
    store = FinishedRaces(tmp_path, max_races=2, max_bytes=10_000)
    ids = [f"{i:012x}" for i in range(3)]
    store.put(ids[0], {"n": 0})
    store.put(ids[1], {"n": 1})
    assert store.get(ids[0]) == {"n": 0}  # used: ids[1] is now the least recent
    store.put(ids[2], {"n": 2})
    assert store.ids() == [ids[0], ids[2]] and not (tmp_path / f"{ids[1]}.json").exists()
    store.put(ids[1], {"n": 1}, twins={8: b"x" * 9_990})
    assert store.ids() == [ids[1]]  # by bytes: the others went first
    assert store.total_bytes() <= 10_000
    store.put("abcdefabcdef", {"n": 3}, twins={8: b"y" * 20_000})  # larger than the bound alone
    assert "abcdefabcdef" not in store and store.total_bytes() <= 10_000
    assert FinishedRaces(tmp_path, max_races=2, max_bytes=10_000).ids() == store.ids()  # what a restart finds


def test_the_store_folder_never_holds_more_than_its_bound(tmp_path, monkeypatch):
    """Room is made before a race is written: the folder is within its bound at every moment, not only after."""
    import resnet_viz.race.store as store_module

    store = FinishedRaces(tmp_path, max_races=2, max_bytes=10_000)
    seen = []
    replace_file = store_module.os.replace

    def watching(src, dst):
        replace_file(src, dst)
        seen.append(
            (len(list(tmp_path.glob("*.json"))), sum(p.stat().st_size for p in tmp_path.iterdir() if p.is_file()))
        )

    monkeypatch.setattr(store_module.os, "replace", watching)
    for i in range(6):
        store.put(f"{i:012x}", {"n": i}, twins={8: b"z" * 4_000})
    assert len(seen) == 6 and all(count <= 2 and size <= 10_000 for count, size in seen), seen
    assert store.ids() == [f"{i:012x}" for i in (4, 5)]


def test_leaving_ends_only_a_view_until_the_last_viewer_leaves(registry):
    opened = registry.open(tiny(steps=5000), "cpu", "ann")
    registry.open(tiny(steps=5000), "cpu", "bob")
    wait(lambda: opened.race.step >= 2)
    registry.leave("ann")
    time.sleep(0.5)
    assert not opened.race.done and registry.viewers(opened.id) == 1  # Bob still watches: it trains on
    registry.leave("bob")
    assert opened.race.join(30) and opened.race.status == "stopped"
    wait(lambda: opened.id not in registry.live_ids())
    assert opened.id not in registry.store  # a stopped race is not kept
    assert registry.open(tiny(steps=5000), "cpu", "cid").kind == "started"  # the setting trains afresh
    registry.leave("cid")


def test_pause_acts_only_for_the_only_viewer(registry):
    opened = registry.open(tiny(steps=5000), "cpu", "ann")
    registry.open(tiny(steps=5000), "cpu", "bob")
    wait(lambda: opened.race.step >= 1)
    assert registry.pause("ann") is False and not opened.race.paused
    registry.leave("bob")
    assert registry.pause("ann") is True and opened.race.paused
    registry.resume("ann")
    assert not opened.race.paused
    registry.leave("ann")
    assert opened.race.join(30)


def test_a_viewer_holds_one_race_at_a_time(registry):
    a = registry.open(tiny(steps=5000), "cpu", "ann")
    b = registry.open(tiny(steps=5000, seed=1), "cpu", "ann")  # another setting: the first view ends
    assert b.kind == "started" and b.id != a.id and registry.watching("ann") == b.id
    assert a.race.join(30) and a.race.status == "stopped"
    registry.leave("ann")
    assert b.race.join(30)


def test_step_times_are_remembered_and_scale_to_other_shapes(tmp_path):
    times = est.StepTimes(str(tmp_path))
    config = tiny(steps=400)
    times.record(config, "cpu", 0.1, 5.0, 400)
    measured = est.estimate_race(config, "cpu", times=times)
    assert measured.how == "measured" and measured.seconds == pytest.approx(5.0 + 0.1 * 400)
    bigger = replace(config, depths=(8, 20), recipe=replace(config.recipe, batch_size=16))
    scaled = est.estimate_race(bigger, "cpu", times=times)
    assert scaled.how == "scaled"
    assert scaled.step_s == pytest.approx(0.1 * est.step_work(bigger) / est.step_work(config))
    assert est.StepTimes(str(tmp_path)).lookup(config, "cpu")[1] == "measured"  # kept on disk


def test_a_machine_without_measurements_probes_once(tmp_path):
    times = est.StepTimes(str(tmp_path))
    calls = []

    def probe(config, device):
        calls.append(config)
        return 0.02

    first = est.estimate_race(tiny(steps=100), "cpu", times=times, probe=probe)
    assert first.how == "probed" and len(calls) == 1 and calls[0].seeds == 1 and calls[0].recipe.steps == 3
    assert first.step_s == pytest.approx(0.02 * est.step_work(tiny(steps=100)) / est.step_work(calls[0]))
    est.estimate_race(tiny(steps=200), "cpu", times=times, probe=probe)
    assert len(calls) == 1  # remembered


def test_a_real_probe_measures_a_step():
    seconds = est.measure_probe(est.probe_config(tiny(), "cpu"), "cpu")
    assert 0 < seconds < 30


def test_the_budget_refuses_a_race_above_the_limit_and_says_how_many_steps_fit(monkeypatch):
    estimate = est.Estimate(seconds=10 + 2000 * 0.5, train_s=1000, prepare_s=10, step_s=0.5, how="measured")
    verdict = est.check_budget(estimate, 600, 2000)
    assert not verdict.fits and verdict.max_steps == 1180 and verdict.limit_s == 600
    assert est.check_budget(estimate, 2000, 2000).fits
    assert est.check_budget(estimate, None, 2000).fits  # no limit
    monkeypatch.delenv(est.BUDGET_ENV, raising=False)
    assert est.budget_limit() == est.DEFAULT_BUDGET_S == 600
    monkeypatch.setenv(est.BUDGET_ENV, "120")
    assert est.budget_limit() == 120
    monkeypatch.setenv(est.BUDGET_ENV, "0")
    assert est.budget_limit() is None
    monkeypatch.setenv(est.BUDGET_ENV, "lots")
    assert est.budget_limit() == est.DEFAULT_BUDGET_S


@pytest.mark.parametrize("depth, size", [(8, 16), (20, 32), (56, 16)])
def test_image_macs_counts_the_twins_convolutions(depth, size):
    import torch

    from resnet_viz.models import build_twins

    for net in build_twins("cifar", depth=depth, num_classes=8, seed=0):
        macs = []

        def count(module, inputs, output):
            macs.append(output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1])

        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(count)
        net(torch.zeros(1, 3, size, size))
        assert est.image_macs(depth, size) == sum(macs)  # option A shortcuts: no convolution of their own


@pytest.mark.parametrize("size", [16, 32])
def test_the_floor_is_below_what_a_race_takes_on_this_machine(size):
    """The floor may refuse a race without training it only because it is a bound: below the measured step."""
    config = replace(tiny(), image_size=size, precision="auto")
    probe = est.probe_config(config, "cpu")
    measured = est.measure_probe(probe, "cpu")
    floor = est.floor_estimate(probe, "cpu")
    assert floor.how == "floor" and 0 < floor.step_s < measured
    per_image = 2 * est.image_macs(20, size)  # a forward pass; training an image costs three
    test_share = probe.test_size / probe.recipe.steps  # its one test evaluation, spread over its steps
    assert est.step_flops(probe) == pytest.approx(2 * per_image * (3 * probe.recipe.batch_size + test_share))


def test_a_machine_without_measurements_refuses_a_race_far_over_the_budget_from_its_arithmetic(tmp_path):
    times = est.StepTimes(str(tmp_path))
    huge = replace(tiny(steps=20000, depths=(110,)), recipe=replace(tiny().recipe, steps=20000, batch_size=1024))
    verdict = est.floor_verdict(huge, "cpu", 600, times=times)
    assert verdict is not None and not verdict.fits and verdict.estimate.how == "floor"
    assert verdict.estimate.seconds > 600 and verdict.max_steps < 20000
    assert est.floor_verdict(tiny(steps=100), "cpu", 600, times=times) is None  # the floor fits: the estimate decides
    assert est.floor_verdict(huge, "cpu", None, times=times) is None  # no limit
    times.record(tiny(steps=100), "cpu", 0.02, 1.0, 100)
    assert est.floor_verdict(huge, "cpu", 600, times=times) is None  # measured here: the estimate decides


def test_queue_starts_follow_the_trainers():
    assert est.queue_starts([100.0], [50.0, 20.0], 1) == [100.0, 150.0]
    assert est.queue_starts([100.0, 30.0], [50.0, 20.0, 5.0], 2) == [30.0, 80.0, 100.0]
    assert est.queue_starts([], [10.0], 1) == [0.0]


def test_a_queued_race_is_told_its_place_and_the_time_the_race_ahead_needs(registry):
    ahead = est.Estimate(seconds=300.0, train_s=300.0, prepare_s=0.0, step_s=0.06, how="measured")
    behind = est.Estimate(seconds=40.0, train_s=40.0, prepare_s=0.0, step_s=0.01, how="measured")
    a = registry.open(tiny(steps=5000), "cpu", "ann", estimate=ahead)
    b = registry.open(tiny(steps=4000), "cpu", "bob", estimate=behind)
    c = registry.open(tiny(steps=3000), "cpu", "cid", estimate=behind)
    wait(lambda: a.race.step >= 5)
    queue = registry.queue()
    assert set(queue) == {b.id, c.id}
    progress = a.race.progress()
    left = progress["elapsed_s"] / progress["step"] * (5000 - progress["step"])  # from A's measured steps
    assert queue[b.id][0] == 1 and queue[b.id][1] == pytest.approx(left, rel=0.2)
    assert queue[c.id][0] == 2 and queue[c.id][1] == pytest.approx(queue[b.id][1] + 40.0, rel=0.2)
    for viewer in ("cid", "bob", "ann"):
        registry.leave(viewer)
    assert a.race.join(30) and b.race.join(30) and c.race.join(30)


def test_a_finished_race_records_its_step_times(registry):
    opened = registry.open(tiny(steps=30), "cpu", "ann")
    stored(registry, opened.id)
    found = registry.times.lookup(tiny(steps=30), "cpu")
    assert found is not None and found[1] == "measured" and found[0]["steps"] == 30
