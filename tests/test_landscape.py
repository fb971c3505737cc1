"""Loss landscapes: the grid's values, the directions, the shared model left alone, Stop, files and figures."""

import json
import math
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import resnet_viz as rv
from resnet_viz import landscape as ls
from resnet_viz.i18n import language
from resnet_viz.landscape_plots import (
    convexity_figure,
    line_figure,
    slice_figure,
    twin_contour_figure,
    twin_surface_figure,
)


@pytest.fixture(scope="module")
def tiny():
    """Depth-8 twins with a few steps of training (so the twins' weights differ) and a small batch."""
    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=8, seed=3)
    x, y = ls.landscape_batch(12)
    for model in (resnet, plain):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        model.train()
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        for p in model.parameters():
            p.grad = None
    return resnet, plain, x, y


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_grid_point_recomputed_by_hand_from_the_directions_equals_the_surface(tiny):
    resnet, _, x, y = tiny
    surf = rv.loss_surface(resnet, x, y, span=0.6, steps=5, seed=7)
    d1, d2 = surf.directions
    for i, j in [(0, 4), (3, 1), (2, 2)]:
        a, b = float(surf.alphas[i]), float(surf.betas[j])
        model = rv.build_twins("cifar", depth=8, num_classes=8, seed=0)[0]
        state = snapshot(resnet)
        for name, _p in resnet.named_parameters():
            state[name] = state[name] + a * d1[name] + b * d2[name]
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():
            logits = model(x)
        assert surf.loss[i, j] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
        assert surf.accuracy[i, j] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert surf.loss[2, 2] == pytest.approx(surf.centre_loss)
    assert np.isfinite(surf.loss).all() and surf.loss.shape == (5, 5)
    assert len(np.unique(surf.loss.round(6))) > 20  # the grid really moves


@pytest.mark.parametrize("twin", [0, 1])
def test_grid_points_evaluated_as_one_fused_group_equal_one_at_a_time(tiny, twin):
    """Points per pass 4 on a 3x3 grid (the last pass holds one point): the same losses and accuracies as one
    model at a time, on the ResNet and on its plain twin, and the shared model is left untouched."""
    model, x, y = tiny[twin], tiny[2], tiny[3]
    before = snapshot(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on shared cores two threads wait on each other
    try:
        one = rv.loss_surface(model, x, y, span=0.6, steps=3, seed=7, points=1)
        done = []
        fused = rv.loss_surface(model, x, y, span=0.6, steps=3, seed=7, points=4, progress=lambda d, t: done.append(d))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(fused.loss, one.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fused.accuracy, one.accuracy)
    assert done == [4, 8, 9]
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_directions_are_filter_normalised_and_zero_for_biases_and_batchnorm(tiny):
    resnet, _, _x, _y = tiny
    d1, d2 = ls.random_directions(resnet, seed=1)
    moved = 0
    for name, p in resnet.named_parameters():
        for d in (d1[name], d2[name]):
            if p.dim() > 1:  # conv filters, linear rows: each rescaled to the norm of the same filter of θ
                got = d.reshape(len(d), -1).norm(dim=1)
                want = p.detach().reshape(len(p), -1).norm(dim=1)
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
                moved += 1
            else:  # biases and BatchNorm's weight and bias stay put
                assert not d.any(), name
    assert moved == 2 * 8  # depth 8: 7 convolutions and the linear layer
    assert any(n.endswith("bn1.weight") for n in d1) and "fc.bias" in d1
    assert not torch.equal(d1["fc.weight"], d2["fc.weight"])  # two different directions
    again = ls.random_directions(resnet, seed=1)[0]
    assert all(torch.equal(d1[n], again[n]) for n in d1)  # the seed fixes them
    other = ls.random_directions(resnet, seed=2)[0]
    assert not torch.equal(d1["layer1.0.conv1.weight"], other["layer1.0.conv1.weight"])


def test_twins_share_the_random_draw_on_every_shared_parameter(tiny):
    resnet, plain, x, y = tiny
    surfaces = rv.twin_surfaces(resnet, plain, x, y, steps=3, span=0.5, seed=4)
    assert set(surfaces) == {"resnet", "plain"}
    (r1, _r2), (p1, _p2) = surfaces["resnet"].directions, surfaces["plain"].directions
    assert set(p1) <= set(r1)
    for name in p1:
        if p1[name].dim() > 1:  # the same Gaussian draw; each twin's own filter norms
            a, b = r1[name].reshape(len(r1[name]), -1), p1[name].reshape(len(p1[name]), -1)
            torch.testing.assert_close(a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True))


def test_the_shared_model_is_untouched_and_never_seen_perturbed(tiny):
    resnet, _, x, y = tiny
    model = rv.build_twins("cifar", depth=8, num_classes=8, seed=5)[0]
    model.train()  # not the mode the landscape uses
    before = snapshot(model)
    seen_changed = []

    def progress(done, total):  # runs while the grid is in flight: the shared model must look unchanged
        seen_changed.append(any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items()))

    worker = threading.Thread(target=lambda: rv.loss_surface(model, x, y, steps=3, span=1.0, progress=progress))
    worker.start()
    worker.join()
    assert len(seen_changed) == 9 and not any(seen_changed)
    assert model.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    rv.loss_line(model, x, y, steps=3)
    rv.loss_line(model, x, y, steps=3, init=resnet)
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_stop_cancels_the_grid(tiny, kind):
    resnet, _, x, y = tiny
    before = snapshot(resnet)
    event = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 3:
            event.set()

    cancel = event if kind == "event" else event.is_set
    with pytest.raises(rv.LandscapeCancelled):
        rv.loss_surface(resnet, x, y, steps=5, progress=progress, cancel=cancel)
    assert calls == [1, 2, 3]  # stopped at once, not after the remaining 22 points
    assert all(torch.equal(v, resnet.state_dict()[k]) for k, v in before.items())
    with pytest.raises(rv.LandscapeCancelled):
        rv.record_path(resnet, x, y, steps=10, cancel=lambda: True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=4), "odd"),
        (dict(steps=1), "odd"),
        (dict(steps=201), "odd"),
        (dict(span=0.0), "span"),
        (dict(span=float("nan")), "span"),
        (dict(span=-1), "span"),
    ],
)
def test_bad_grid_settings_are_refused_with_a_clear_message(tiny, kwargs, message):
    resnet, _, x, y = tiny
    with pytest.raises(ValueError, match=message):
        rv.loss_surface(resnet, x, y, **kwargs)


def test_bad_batches_and_directions_are_refused(tiny):
    resnet, _, x, y = tiny
    with pytest.raises(ValueError, match="labels"):
        rv.loss_surface(resnet, x, y[:-1], steps=3)
    with pytest.raises(ValueError, match="does not have"):
        rv.loss_surface(resnet, x, y, steps=3, directions=({"nope.weight": torch.zeros(1)}, {}))


def test_a_foreign_model_is_refused_a_fused_grid_with_a_clear_message(tiny):
    _, _, x, y = tiny
    foreign = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 8))
    assert rv.loss_surface(foreign, x, y, steps=3).loss.shape == (3, 3)  # one model at a time: any model
    with pytest.raises(TypeError, match="only a TwinNet"):
        rv.loss_surface(foreign, x, y, steps=3, points=4)


def test_a_path_file_needs_two_explained_shares_and_is_not_broadcast():
    from resnet_viz.landscape.distributed import broadcast_path

    path = ls.OptimizerPath([0, 5], np.zeros((2, 2)), (0.6, 0.3), [2.0, 1.0])
    data = path.to_dict()
    back = ls.OptimizerPath.from_dict(data)
    assert back.explained == (0.6, 0.3) and back.directions is None and back.trained is None
    for explained in ([0.6, 0.3, 0.1], [0.6]):
        with pytest.raises(ValueError, match="not an optimiser path"):
            ls.OptimizerPath.from_dict({**data, "explained": explained})
    with pytest.raises(ValueError, match="recorded in this process"):
        broadcast_path(back)  # it has no directions or weights to send


def test_nonconvex_share_counts_points_that_curve_down():
    a = np.linspace(-1, 1, 9)
    A, B = np.meshgrid(a, a, indexing="ij")
    ones = np.ones((9, 9))
    bowl = ls.Surface(a, a, 1 + A**2 + 3 * B**2, ones)
    saddle = ls.Surface(a, a, 5 + A**2 - B**2, ones)
    tilted = ls.Surface(a, a, 5 + A**2 - 0.01 * B**2, ones)  # negative curvature 1% of the positive: noise
    assert bowl.nonconvex_share == 0
    assert saddle.nonconvex_share == 1
    assert tilted.nonconvex_share == 0
    lam_min, lam_max = ls.curvature(saddle)
    np.testing.assert_allclose(lam_min, -2, rtol=1e-6)
    np.testing.assert_allclose(lam_max, 2, rtol=1e-6)


def test_loss_line_runs_from_the_initial_to_the_trained_weights(tiny):
    resnet, _, x, y = tiny
    init = rv.build_twins("cifar", depth=8, num_classes=8, seed=3)[0]  # tiny's initial weights
    line = rv.loss_line(resnet, x, y, span=1.0, steps=7, init=init)
    np.testing.assert_allclose(line.t, [-0.25, 0, 0.25, 0.5, 0.75, 1.0, 1.25])
    for t, model in ((1, init), (5, resnet)):
        with torch.no_grad():
            want = float(F.cross_entropy(model.eval()(x), y))
        assert line.loss[t] == pytest.approx(want, rel=1e-5)
    rand = rv.loss_line(resnet, x, y, span=0.5, steps=5, seed=0)
    surf = rv.loss_surface(resnet, x, y, span=0.5, steps=5, seed=0)
    np.testing.assert_allclose(rand.loss, surf.loss[:, 2], rtol=1e-5)  # the surface's β = 0 row


def test_record_path_keeps_few_snapshots_and_orthonormal_pca_directions(tiny):
    resnet, _, x, y = tiny
    before = snapshot(resnet)
    path = rv.record_path(resnet, x, y, steps=12, batch_size=6, max_snapshots=5)
    assert len(path.steps) <= 5 and path.steps[0] == 0 and path.steps[-1] == 12
    assert path.coords.shape == (len(path.steps), 2) and np.allclose(path.coords[-1], 0)
    v = [torch.cat([d.reshape(-1) for d in dirs.values()]) for dirs in path.directions]
    assert float(v[0].norm()) == pytest.approx(1, rel=1e-4) and float(v[1].norm()) == pytest.approx(1, rel=1e-4)
    assert abs(float(v[0] @ v[1])) < 1e-4
    assert 0 < path.explained[1] <= path.explained[0] <= 1
    assert all(torch.equal(v, resnet.state_dict()[k]) for k, v in before.items())
    surf = ls.path_surface(path, x, y, steps=3)
    assert surf.kind == "pca" and surf.span >= np.abs(path.coords).max() and path.surface is surf
    assert path.trained is not resnet and "trained" not in repr(path)
    read_back = ls.OptimizerPath.from_dict(path.to_dict())
    assert read_back.trained is None and read_back.surface is not None
    with pytest.raises(ValueError, match="no trained model"):
        ls.path_surface(read_back, x, y, steps=3)
    big = rv.load_bundled("shapes-56")[0]
    assert ls.snapshot_bytes(big) == 4 * 848_816  # about 3.4 MB a snapshot for ResNet-56
    with pytest.raises(ValueError, match="max_snapshots"):
        rv.record_path(resnet, x, y, max_snapshots=1000)


def test_the_shipped_surfaces_record_their_settings_and_show_the_depth_contrast():
    r20, r56 = ls.precomputed_surfaces("shapes-20"), ls.precomputed_surfaces("shapes-56")
    for surfaces in (r20, r56):
        assert set(surfaces) == {"resnet", "plain"}
        for twin, s in surfaces.items():
            assert s.steps == 21 and s.span == 1.0 and s.seed == 0 and s.n_images == 128 and s.twin == twin
            assert s.loss.shape == (21, 21) and s.directions is None
    info = ls.precomputed_info("shapes-56")
    assert info["steps"] == 21 and info["images"] == 128 and info["seed"] == 0
    # What the page says: depth 56's plain twin is far more rugged than its ResNet and than depth 20's twins.
    assert r56["plain"].nonconvex_share > 2 * r56["resnet"].nonconvex_share
    assert r56["plain"].nonconvex_share > 2 * max(r20["resnet"].nonconvex_share, r20["plain"].nonconvex_share)
    paths = ls.precomputed_paths("shapes-20")
    assert set(paths) == {"resnet", "plain"} and paths["resnet"].surface.kind == "pca"
    lines = ls.precomputed_lines("shapes-56")
    assert lines["resnet"].kind == "interpolation"
    with pytest.raises(ValueError, match="available"):
        ls.precomputed_surfaces("shapes-999")


def test_a_surface_survives_its_file_and_bad_files_are_refused(tmp_path, tiny):
    resnet, plain, x, y = tiny
    surfaces = rv.twin_surfaces(resnet, plain, x, y, steps=3, seed=1)
    surfaces["plain"].loss[0, 0] = float("inf")  # diverged points are kept (as missing) and the file stays JSON
    path = ls.write_landscape_file(tmp_path / "s.json", surfaces, name="tiny")
    json.loads(path.read_text())
    back = ls.read_landscape_file(path)["surfaces"]
    np.testing.assert_allclose(back["resnet"].loss, surfaces["resnet"].loss, rtol=1e-5)
    assert math.isnan(back["plain"].loss[0, 0])
    for text in (
        "{",
        json.dumps({"format": "other"}),
        json.dumps({"format": ls.FORMAT, "surfaces": {"resnet": {"alphas": [0, 1]}}}),
    ):
        with pytest.raises(ValueError, match="not a landscape|not a loss surface"):
            ls.read_landscape_file(text)


def test_figures_put_both_twins_on_one_colour_scale():
    surfaces = ls.precomputed_surfaces("shapes-56")
    paths = ls.precomputed_paths("shapes-56")
    fig = twin_contour_figure(surfaces)
    contours = [t for t in fig.data if t.type == "contour"]
    assert len(contours) == 2 and {t.coloraxis for t in contours} == {"coloraxis"}
    lo, hi = fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax
    all_loss = np.concatenate([s.loss.ravel() for s in surfaces.values()])
    assert lo == pytest.approx(math.log10(all_loss.min())) and hi == pytest.approx(math.log10(all_loss.max()))
    pca = {t: p.surface for t, p in paths.items()}
    fig = twin_contour_figure(pca, trajectory=paths)
    drawn = [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]
    assert len(drawn) == 2 and len(drawn[0].x) == len(paths["resnet"].steps)
    assert len([t for t in twin_surface_figure(surfaces).data if t.type == "surface"]) == 2
    assert len(slice_figure(surfaces).data) == 4
    assert len(convexity_figure(surfaces).data) == 2
    assert line_figure(ls.precomputed_lines("shapes-20")).layout.title.text.startswith("From the initial")
    with language("zh"):
        fig = twin_contour_figure(surfaces)
        assert "普通" in fig.layout.annotations[1].text
        assert fig.layout.coloraxis.colorbar.title.text != "loss (log scale)"


def test_landscape_page_title_is_translated():
    from resnet_viz.i18n import _

    with language("zh"):
        assert _("Loss landscape") == "损失曲面"
    # Completeness and staleness of every catalogue, this part's included: tests/test_i18n.py.
