"""CUDA paths: each result on the GPU matches the CPU's, and the race trains there (skipped without CUDA)."""

import math

import pytest
import torch

import resnet_viz as rv
from resnet_viz import race as rr
from resnet_viz.data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from resnet_viz.gradients import gradient_norms
from resnet_viz.training import Recipe

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def shapes20():
    resnet, plain, _ = rv.load_bundled("shapes-20")
    return resnet.eval(), plain.eval()


@pytest.fixture(scope="module")
def batch():
    x, y, _ = make_shapes(32, seed=TEST_SEED)
    return x, y


def test_gradient_norms_on_cuda_match_the_cpu(shapes20, batch):
    x, y = batch
    for model in shapes20:
        cpu = dict(gradient_norms(model, x, y))
        gpu_model = rv.load_bundled("shapes-20", device=CUDA)[0 if model.twin == "resnet" else 1]
        gpu = dict(gradient_norms(gpu_model, x.to(CUDA), y.to(CUDA)))
        assert list(gpu) == list(cpu)
        for name, value in cpu.items():  # TF32 convolutions on the GPU: a few parts in a thousand
            assert math.isclose(gpu[name], value, rel_tol=2e-2, abs_tol=1e-6), (model.twin, name, gpu[name], value)


def test_grad_cam_on_cuda_matches_the_cpu(shapes20, batch):
    x, _ = batch
    resnet = shapes20[0]
    cpu = rv.explain(resnet, x[:1], topk=3)
    gpu = rv.explain(rv.load_bundled("shapes-20", device=CUDA)[0], x[:1].to(CUDA), topk=3)
    assert list(cpu.indices) == list(gpu.indices)
    a, b = torch.as_tensor(cpu.heatmaps[0]).float(), torch.as_tensor(gpu.heatmaps[0]).float()
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99


def test_loss_surface_on_cuda_matches_the_cpu(batch):
    x, y = batch
    resnet_cpu = rv.load_bundled("shapes-20")[0]
    resnet_gpu = rv.load_bundled("shapes-20", device=CUDA)[0]
    cpu = rv.loss_surface(resnet_cpu, x, y, steps=5, span=0.5, seed=0)
    gpu = rv.loss_surface(resnet_gpu, x.to(CUDA), y.to(CUDA), steps=5, span=0.5, seed=0)
    a, b = torch.as_tensor(cpu.loss), torch.as_tensor(gpu.loss)
    assert torch.allclose(a, b, rtol=2e-2, atol=1e-3), (a, b)


def test_quick_race_trains_on_cuda_in_float32_and_in_forced_bfloat16():
    """Automatic precision is float32 (TF32 convolutions) on CUDA, where these small networks are bound by kernel
    launches; bfloat16 can still be forced. Both learn; on a GPU the runs take turns in the race's thread."""
    tx, ty, _ = make_shapes(256, seed=TRAIN_SEED, size=16)
    vx, vy, _ = make_shapes(64, seed=TEST_SEED, size=16)
    data = rr.RaceData("shapes", tx, ty, vx, vy, list(SHAPE_CLASSES), "small shapes")
    recipe = Recipe(steps=40, batch_size=32, optimizer="adam", lr=1e-2, warmup_steps=5, weight_decay=0.0)
    for precision, expected in (("auto", "fp32"), ("bf16", "bf16")):
        config = rr.RaceConfig(depths=(8, 20), recipe=recipe, eval_every=20, snapshot_every=20, precision=precision)
        race = rr.Race(config, device=CUDA, data=data, scheduler=rr.RaceScheduler(1)).start()
        assert race.join(300) and race.status == "finished", race.message
        result = race.to_dict()
        assert result["device"].startswith("CUDA")
        assert race.precision == expected and result["recipe"]["precision"] == expected
        for run in result["runs"]:
            assert run["status"] == "finished" and len(run["history"]) == 40
            losses = [row["train_loss"] for row in run["history"]]
            assert all(math.isfinite(v) for v in losses)
            assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10  # it learns
        groups, _ = race._plan_workers()
        assert len(groups) == 1 and len(groups[0]) == 4


def test_the_budget_floor_is_below_a_probe_step_on_cuda():
    from resnet_viz.race import estimate as est

    probe = est.probe_config(rr.RaceConfig(), CUDA)
    measured = est.measure_probe(probe, CUDA)
    floor = est.floor_estimate(probe, CUDA)
    assert 0 < floor.step_s < measured
