"""Hessian extreme eigenvalues by Lanczos with Hessian-vector products, checked against a dense Hessian."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from resnet_viz import curvature as cv


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).eval()


def dense_hessian(net, x, y):
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double()

    def loss(theta):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            k = math.prod(shape)
            params[name] = theta[i : i + k].reshape(shape)
            i += k
        return F.cross_entropy(functional_call(net.double(), params, (x.double(),)), y)

    return torch.autograd.functional.hessian(loss, flat)


def test_lanczos_finds_the_extremes_of_a_known_matrix():
    torch.manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64))
    eig = torch.linspace(-0.3, 5.0, 40, dtype=torch.float64)
    A = q @ torch.diag(eig) @ q.T
    lam_max, lam_min = cv.extreme_eigenvalues(lambda v: A @ v, 40, steps=40)
    assert lam_max == pytest.approx(5.0, rel=1e-8)
    assert lam_min == pytest.approx(-0.3, abs=1e-8)


@pytest.mark.slow
def test_hessian_eigenvalues_match_a_dense_eigendecomposition():
    net = tiny_net()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(3))
    result = cv.curvature(net, x, y, steps=51)  # 51 parameters: Lanczos is exact at full size
    eig = torch.linalg.eigvalsh(dense_hessian(tiny_net(), x, y))
    assert result.parameters == 51 and result.images == 16
    assert result.lambda_max == pytest.approx(float(eig[-1]), rel=1e-4)
    assert result.lambda_min == pytest.approx(float(eig[0]), rel=1e-3, abs=1e-5)
    assert result.lambda_min < 0  # a tanh net at random weights is not at a minimum
    assert result.ratio == pytest.approx(abs(float(eig[0] / eig[-1])), rel=1e-3)
    # a few steps already give the top eigenvalue closely
    assert cv.curvature(net, x, y, steps=20).lambda_max == pytest.approx(float(eig[-1]), rel=1e-2)


def test_the_model_is_left_untouched_and_progress_counts_products():
    net = tiny_net()
    flags = [p.requires_grad_(False) for p in net.parameters()]
    before = [p.clone() for p in net.parameters()]
    calls = []
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    cv.curvature(net, x, y, steps=5, progress=lambda done, total: calls.append((done, total)))
    assert all(not p.requires_grad and p.grad is None for p in net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert calls[-1] == (10, 10) and len(flags) == 4


@pytest.mark.slow
def test_twin_curvatures_of_small_twins(one_thread):
    import resnet_viz as rv

    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=8)
    x, y, _ = rv.make_shapes(8, seed=0)
    out = cv.twin_curvatures(resnet, plain, x, y, steps=6)
    assert set(out) == {"resnet", "plain"}
    for c in out.values():
        assert c.lambda_max > 0 and c.lambda_min <= c.lambda_max and math.isfinite(c.ratio)
        assert set(c.to_dict()) >= {"lambda_max", "lambda_min", "ratio", "steps", "images"}


def test_cli_writes_a_curvature_file_for_a_checkpoint(tmp_path, one_thread, capsys, monkeypatch):
    import resnet_viz as rv
    import resnet_viz.landscape
    from resnet_viz.__main__ import main

    # a few shapes instead of cutting them from the 10,000-image training set
    monkeypatch.setattr(resnet_viz.landscape, "landscape_batch", lambda n: rv.make_shapes(n, seed=1)[:2])

    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=8)
    ckpt = rv.save_twins(
        tmp_path / "race-8.safetensors", resnet, plain, {"build": dict(arch="cifar", depth=8, num_classes=8)}
    )
    out = tmp_path / "curv.json"
    assert main(["curvature", "--checkpoint", str(ckpt), "--images", "4", "--steps", "2", "--out", str(out)]) == 0
    doc = cv.read_curvature_file(out)
    twins = doc["models"][str(ckpt)]
    assert set(twins) == {"resnet", "plain"} and twins["plain"].images == 4 and twins["plain"].steps == 2
    assert "--checkpoint" in doc["command"]
    assert "lambda_max" in capsys.readouterr().out
    assert main(["curvature", "--checkpoint", str(ckpt)]) == 2  # no --out: the shipped file is left alone
    with pytest.raises(ValueError):
        cv.read_curvature_file(ckpt)


def test_the_shipped_file_holds_both_twins_of_every_bundled_pair():
    import resnet_viz as rv

    doc = cv.read_curvature_file()
    assert set(doc["models"]) == set(rv.list_bundled())
    assert doc["command"].startswith("python -m resnet_viz curvature")
    for twins in doc["models"].values():
        assert set(twins) == {"resnet", "plain"}
        for c in twins.values():
            assert c.lambda_max > 0 and c.lambda_min <= c.lambda_max and c.images >= 1


def test_loss_landscape_page_shows_the_shipped_eigenvalues():
    from conftest import open_app_page

    at = open_app_page("pages/loss_landscape.py", {"model": "shapes-56"}, timeout=240)
    assert "Curvature at the trained weights: the Hessian's extreme eigenvalues" in [s.value for s in at.subheader]
    shipped = cv.read_curvature_file()["models"]["shapes-56"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Plain twin: |λmin/λmax|"] == f"{shipped['plain'].ratio:.3g}"
    assert metrics["ResNet: λmax"] == f"{shipped['resnet'].lambda_max:.3g}"


def test_a_race_s_downloaded_twins_get_their_curvature_on_the_loss_landscape_page(one_thread):
    from conftest import APP
    from streamlit.testing.v1 import AppTest

    from resnet_viz import race as rr
    from resnet_viz.checkpoints import load_checkpoint
    from resnet_viz.landscape import training_batch
    from resnet_viz.training import Recipe
    from ui.curvature_panel import LIVE_IMAGES, LIVE_STEPS

    config = rr.RaceConfig(
        depths=(8,),
        recipe=Recipe(steps=4, batch_size=8, lr=0.05, warmup_steps=0),
        seeds=1,
        train_size=64,
        test_size=16,
        eval_every=0,
        snapshot_every=0,
    )  # the quick race's data: 16 px
    race = rr.Race(config, scheduler=rr.RaceScheduler(1)).start()
    assert race.join(120) and race.status == "finished"
    checkpoint = rr.race_twins_bytes(race, 8)

    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("pages/loss_landscape.py")
    at.run()
    at.file_uploader(key="checkpoint").set_value(("race-8.safetensors", checkpoint, "application/octet-stream"))
    at.run()
    # AppTest can't map the radio's value back through format_func: give it the label before each run
    label = next(o for o in at.radio(key="ll_model").options if o.startswith("Your checkpoint"))
    at.radio(key="ll_model").set_value(label).run()
    at.radio(key="ll_model").set_value(label)
    next(b for b in at.button if b.key == "ll_curv_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = {m.label: m.value for m in at.metric}

    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(checkpoint)
        f.flush()
        resnet, plain, info = load_checkpoint(f.name)
    x, y = training_batch(info, LIVE_IMAGES)
    assert x.shape[-1] == 16  # the race's own images, not the bundled 32 px batch
    expected = cv.twin_curvatures(resnet, plain, x, y, steps=LIVE_STEPS)
    assert metrics["ResNet: λmax"] == f"{expected['resnet'].lambda_max:.3g}"
    assert metrics["Plain twin: λmin"] == f"{expected['plain'].lambda_min:.3g}"
