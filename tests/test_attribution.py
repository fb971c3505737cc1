"""rv.attribute against captum's own output, the sanity check, and the faithfulness metrics."""

import math
import threading

import numpy as np
import pytest
import torch
from captum import attr as ca
from PIL import Image
from torch import nn

import resnet_viz as rv
from resnet_viz import attribution as A
from resnet_viz.attribution import tables
from resnet_viz.data import TEST_SEED


@pytest.fixture(scope="module")
def twins():
    resnet, plain, _ = rv.load_bundled("shapes-20")
    return resnet, plain


@pytest.fixture(scope="module")
def x():
    return rv.make_shapes(1, seed=TEST_SEED)[0]


def _captum(model, x, method, target):
    """captum called directly, the way its documentation shows, with the options attribute() uses."""
    zeros = torch.zeros_like(x)
    if method == "Grad-CAM":
        return ca.LayerGradCam(model, model.layer3).attribute(x, target=target, relu_attributions=True)
    if method == "Saliency":
        return ca.Saliency(model).attribute(x, target=target, abs=True)
    if method == "Integrated Gradients":
        return ca.IntegratedGradients(model).attribute(x, baselines=zeros, target=target, n_steps=32)
    if method == "Gradient SHAP":
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        np.random.seed(0)  # captum draws baselines and path points from numpy
        return ca.GradientShap(model).attribute(
            x, baselines=torch.cat([zeros, noise]), n_samples=16, stdevs=0.1, target=target
        )
    if method == "DeepLift":
        return ca.DeepLift(model).attribute(x, baselines=zeros, target=target)
    if method == "Guided Backprop":
        return ca.GuidedBackprop(model).attribute(x, target=target)
    if method == "Guided Grad-CAM":
        return ca.GuidedGradCam(model, model.layer3).attribute(x, target=target)
    if method == "Occlusion":
        return ca.Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2), baselines=0, target=target
        )
    raise AssertionError(method)


CAPTUM_CHECKED = [m for m in A.ATTRIBUTION_METHODS if A.METHODS[m].cam is None or m == "Grad-CAM"]  # the rest:
# tests/test_cams.py checks them against pytorch-grad-cam


@pytest.mark.parametrize("method", CAPTUM_CHECKED)
def test_each_method_equals_captums_own_output(twins, x, method):
    model = twins[1] if method == "DeepLift" else twins[0]  # DeepLift on the plain twin too
    target = 5
    ours = rv.attribute(model, x, method=method, target=target)
    ref = _captum(model, x, method, target).detach()
    assert ours.raw.shape == ref.shape
    assert ours.raw.shape[1] == (1 if method == "Grad-CAM" else 3)
    torch.testing.assert_close(ours.raw, ref, rtol=1e-4, atol=1e-6)
    assert float(ref.abs().max()) > 0  # a real comparison, not two empty maps
    assert ours.map.shape == (32, 32) and ours.map.min() >= 0 and ours.map.max() == pytest.approx(1.0)
    assert ours.method == method and ours.target == target and ours.label == rv.SHAPE_CLASSES[target]


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_smoothgrad_option_equals_captums_noise_tunnel(twins, x):
    model = twins[0]
    ours = rv.attribute(model, x, method="Integrated Gradients", target=2, smoothgrad=True, nt_samples=3, n_steps=8)
    torch.manual_seed(0)
    np.random.seed(0)
    ref = ca.NoiseTunnel(ca.IntegratedGradients(model)).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=3,
        stdevs=0.15 * float(x.max() - x.min()),
        baselines=torch.zeros_like(x),
        target=2,
        n_steps=8,
    )
    torch.testing.assert_close(ours.raw, ref.detach(), rtol=1e-4, atol=1e-6)


def test_default_target_is_the_top_class_and_pil_maps_have_the_image_size(twins):
    model = twins[0]
    img = Image.open(rv.sample_images()["chelsea"]).convert("P")  # any mode
    with torch.no_grad():
        top = int(model(rv.imaging.image_to_tensor(img, model.preprocess))[0].argmax())
    for method in ("Grad-CAM", "Occlusion", "Guided Grad-CAM"):
        a = rv.attribute(model, img, method=method)
        assert a.target == top
        assert a.map.shape == (img.height, img.width)
        assert 0 <= a.map.min() and a.map.max() <= 1


def test_expensive_methods_batch_for_the_image_size(twins):
    small = A.occlusion_window(32, 32), A.batch_for(32, 32, 32)
    large = A.occlusion_window(224, 224), A.batch_for(224, 224, 32)
    assert small == ((4, 2), 32) and large[0] == (28, 14) and 1 <= large[1] < 32
    a = rv.attribute(twins[0], torch.zeros(1, 3, 32, 32), method="Integrated Gradients", target=0)
    assert a.options["internal_batch_size"] == 32


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _hooks(model):
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_sanity_check_and_hooked_methods_leave_the_shared_model_unchanged(x, training):
    model, _, _ = rv.load_bundled("shapes-20")
    model.requires_grad_(True)  # the worst case: gradients could land in .grad
    model.train(training)
    before, hooks = _state(model), _hooks(model)
    steps = A.sanity_check(model, x, method="Guided Grad-CAM", granularity="stage")
    for method in A.ATTRIBUTION_METHODS:
        rv.attribute(model, x, method=method)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training == training and all(m.training == training for m in model.modules())
    assert _hooks(model) == hooks == 0
    assert all(p.grad is None for p in model.parameters())
    assert [s.layer for s in steps] == ["original", "head", "layer3", "layer2", "layer1", "stem"]


_HOOK_REGISTRATIONS = (
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_backward_hook",
)


@pytest.mark.parametrize("method", A.ATTRIBUTION_METHODS)
def test_hooks_land_on_a_private_copy_exactly_for_methods_declared_private_copy(twins, x, monkeypatch, method):
    """A hook on the shared model would reach every other visitor's call while it is there."""
    model = twins[0]
    shared = set(model.modules())
    on_shared, elsewhere = [], []
    for name in _HOOK_REGISTRATIONS:
        original = getattr(nn.Module, name)

        def record(self, *args, original=original, **kwargs):
            (on_shared if self in shared else elsewhere).append(type(self).__name__)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(nn.Module, name, record)
    rv.attribute(model, x, method=method, target=1)
    assert on_shared == []
    assert bool(elsewhere) == A.METHODS[method].private_copy, elsewhere  # a copy only where captum needs one
    assert _hooks(model) == 0


@pytest.mark.parametrize("method", A.ATTRIBUTION_METHODS)
def test_positive_only_methods_drop_negative_evidence_and_the_others_keep_its_size(method):
    raw = torch.tensor([[2.0, -1.0], [0.0, 1.0]]).expand(1, 3, 2, 2) / 3  # channel sums 2, -1, 0, 1
    expected = [[1, 0], [0, 0.5]] if A.METHODS[method].positive_only else [[1, 0.5], [0, 0.5]]
    np.testing.assert_allclose(A.to_map(raw, method, (2, 2)), expected, rtol=1e-6)


def test_the_registry_answers_what_each_method_is(twins):
    assert A.ATTRIBUTION_METHODS[0] == A.DEFAULT_METHOD == "Grad-CAM"
    assert A.method_info("Occlusion") is A.METHODS["Occlusion"] and A.METHODS["Occlusion"].expensive
    assert {m for m, d in A.METHODS.items() if d.private_copy} == {"DeepLift", "Guided Backprop", "Guided Grad-CAM"}
    assert [m for m, d in A.METHODS.items() if d.takes_layer] == ["Grad-CAM", "Guided Grad-CAM", *A.cam_methods()[1:]]
    assert A.METHODS["Integrated Gradients"].options["n_steps"] == 32
    with pytest.raises(TypeError):
        A.METHODS["Saliency"].options["n_steps"] = 3  # declarations are read-only
    with pytest.raises(ValueError, match="unknown method 'LIME'; choose one of Grad-CAM, Saliency"):
        A.method_info("LIME")
    text = A.methods_help()
    assert all(text.count(f"{m}:") + text.count(f"{m} (") >= 1 for m in A.ATTRIBUTION_METHODS)
    # the defaults an Attribution reports are the declared ones
    assert rv.attribute(twins[0], torch.zeros(1, 3, 32, 32), method="Gradient SHAP", target=0).options == {
        "n_samples": A.METHODS["Gradient SHAP"].options["n_samples"],
        "stdevs": A.METHODS["Gradient SHAP"].options["stdevs"],
    }


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_sanity_check_separates_the_methods_as_adebayo_et_al_found(twins):
    """Grad-CAM's maps change once weights are random; Guided Backprop's barely notice a random head."""
    model = twins[0]
    images = rv.make_shapes(4, seed=TEST_SEED)[0]
    cam = [A.sanity_check(model, images[i : i + 1], method="Grad-CAM", seed=i) for i in range(4)]
    gbp = [A.sanity_check(model, images[i : i + 1], method="Guided Backprop", seed=i) for i in range(4)]
    assert cam[0][0].spearman == cam[0][0].ssim == 1.0 and len(cam[0]) == 2 + 9 + 1
    assert [s.layer for s in cam[0][:3]] == ["original", "head", "layer3.2"]

    def mean(runs, k=slice(1, None)):
        return float(np.mean([[s.spearman for s in steps][k] for steps in runs]))

    assert mean(cam) < 0.5 and mean(gbp) > mean(cam) + 0.3
    assert mean(gbp, 1) > 0.9  # the head randomised: Guided Backprop's map is almost the same
    assert {A.sanity_verdict(steps).outcome for steps in gbp} == {"fails"}
    assert np.mean([steps[-1].ssim for steps in cam]) < 0.5


def test_sanity_verdict_at_its_thresholds():
    head, final = A.FAILS_IF_HEAD_SPEARMAN_AT_LEAST, A.PASSES_IF_FINAL_SPEARMAN_AT_MOST
    assert A.sanity_verdict([1.0, head, 0.0]).outcome == "fails"  # a map blind to a random head fails
    assert A.sanity_verdict([1.0, head - 0.01, 0.5, final]).outcome == "passes"
    assert A.sanity_verdict([1.0, head - 0.01, final + 0.01]).outcome == "partly passes"
    verdict = A.sanity_verdict([1.0, 0.3, 0.6, 0.1])
    assert (verdict.head, verdict.final) == (0.3, 0.1)  # after the head, and once every layer is random
    steps = [
        A.Step(layer, np.zeros((2, 2)), rho, rho) for layer, rho in (("original", 1.0), ("head", 0.9), ("stem", 0.1))
    ]
    assert A.sanity_verdict(steps).outcome == "fails"
    assert A.sanity_verdict([1.0]) is None and A.sanity_verdict([]) is None
    for outcome, curve in (("fails", [1, 1, 1]), ("passes", [1, 0, 0]), ("partly passes", [1, 0.5, 0.5])):
        assert A.sanity_verdict(curve).reason.startswith(f"**{outcome}**")


def test_spearman_and_ssim_hand_computed():
    assert A.spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1])) == pytest.approx(-1)
    # ties share ranks: (1.5, 1.5, 3) against (1, 2, 3) -> 1.5 / sqrt(1.5 * 2)
    assert A.spearman(np.array([1.0, 1, 2]), np.array([1.0, 2, 3])) == pytest.approx(1.5 / math.sqrt(3))
    assert A.spearman(np.array([-3.0, 1, 2]), np.array([3.0, 1, 2])) == pytest.approx(1)  # absolute values
    assert A.spearman(np.ones(4), np.arange(4.0)) == 0.0
    a = np.random.default_rng(0).random((16, 16))
    assert A.ssim(a, a) == pytest.approx(1.0)
    # constant 7x7 maps: one window, no variance: (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    c1 = 0.01**2
    assert A.ssim(np.full((7, 7), 0.2), np.full((7, 7), 0.6)) == pytest.approx((0.24 + c1) / (0.40 + c1))
    # one window, x against 1 - x: means 0.5, covariance -var: the structure term is (-2 var + C2) / (2 var + C2)
    v = np.linspace(0, 1, 49).reshape(7, 7)
    var, c2 = np.var(v, ddof=1), 0.03**2
    assert A.ssim(v, 1 - v) == pytest.approx((-2 * var + c2) / (2 * var + c2))


def test_pointing_game_and_mass_inside_hand_computed():
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    s = np.zeros((4, 4))
    s[1, 1], s[3, 3] = 1.0, 0.5
    assert A.pointing_game(s, mask) == 1.0 and A.mass_inside(s, mask) == pytest.approx(1 / 1.5)
    s[3, 3] = 2.0
    assert A.pointing_game(s, mask) == 0.0 and A.mass_inside(s, mask) == pytest.approx(1 / 3)
    s[0, 0] = 2.0  # two tied maxima, one inside
    assert A.pointing_game(s, mask) == 0.5
    assert A.pointing_game(np.zeros((4, 4)), mask) == 0.25 == A.mass_inside(np.zeros((4, 4)), mask)
    with pytest.raises(ValueError):
        A.mass_inside(-s, mask)
    assert A.auc([1, 1, 1]) == 1.0 and A.auc([1, 0]) == 0.5 and A.auc([0, 1, 0, 1]) == pytest.approx(0.5)


class _SumModel(nn.Module):
    """logit 0 = sum of the pixels, logit 1 = 0: p(class 0) = sigmoid(sum)."""

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_deletion_and_insertion_curves_hand_computed():
    model = _SumModel()
    x = torch.tensor([1.0, 2, 3, 4]).view(1, 1, 1, 4)
    saliency = np.array([[0.1, 0.2, 0.3, 0.4]])  # delete 4, then 3, 2, 1
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    d, i = A.perturbation_curves(model, x, saliency, 0, steps=4, insertion_baseline=0.0)
    np.testing.assert_allclose(d, [sig(v) for v in (10, 6, 3, 1, 0)], rtol=1e-6)
    np.testing.assert_allclose(i, [sig(v) for v in (0, 4, 7, 9, 10)], rtol=1e-6)
    d2, _ = A.perturbation_curves(model, x, saliency[:, ::-1].copy(), 0, steps=2)  # 1 and 2 first
    np.testing.assert_allclose(d2, [sig(10), sig(7), sig(0)], rtol=1e-6)
    assert A.auc(d) < A.auc(d2)  # the right order deletes the evidence sooner


def test_a_random_map_scores_at_chance():
    rng = np.random.default_rng(1)
    pg, mi, share = [], [], []
    for k in range(400):
        mask = np.zeros((16, 16), bool)
        r, c, h = rng.integers(0, 8), rng.integers(0, 8), rng.integers(3, 9)
        mask[r : r + h, c : c + h] = True
        s = A.random_map((16, 16), seed=k)
        pg.append(A.pointing_game(s, mask))
        mi.append(A.mass_inside(s, mask))
        share.append(mask.mean())
    p = np.mean(share)
    assert abs(np.mean(pg) - p) < 3 * math.sqrt(p * (1 - p) / 400)
    assert np.mean(mi) == pytest.approx(p, abs=0.01)


def test_evaluate_attributions_rows_and_random_baseline(twins):
    images, labels, masks = rv.make_shapes(6, seed=TEST_SEED)
    rows = A.evaluate_attributions(
        twins[0],
        images,
        labels,
        masks,
        steps=8,
        methods=["Grad-CAM", ("Grad-CAM (layer2)", "Grad-CAM", {"layer": "layer2"})],
    )
    assert [r["method"] for r in rows] == ["Grad-CAM", "Grad-CAM (layer2)", "Random"]
    for r in rows:
        assert r["images"] == 6 and len(r["deletion_curve"]) == len(r["insertion_curve"]) == 9
        assert 0 <= r["pointing_game"] <= 1 and 0 <= r["mass_inside"] <= 1
        assert r["deletion_auc"] == pytest.approx(A.auc(r["deletion_curve"]), abs=1e-3)
    rnd = rows[-1]
    assert rnd["mass_inside"] == pytest.approx(rnd["object_share"], abs=0.03)
    assert rows[0]["mass_inside"] > rnd["mass_inside"]  # Grad-CAM beats noise
    assert rows[0]["insertion_auc"] - rows[0]["deletion_auc"] > rnd["insertion_auc"] - rnd["deletion_auc"]
    csv = A.rows_to_csv(rows)
    assert csv.splitlines()[0].startswith("method,images,pointing_game") and len(csv.splitlines()) == 4


def test_shipped_tables_cover_every_method_and_their_random_row_is_at_chance():
    for name in rv.list_bundled():
        data = A.load_precomputed(name)
        assert data is not None, f"run python -m resnet_viz attributions {name}"
        for twin in ("resnet", "plain"):
            rows = {r["method"]: r for r in data["twins"][twin]["rows"]}
            assert set(A.ATTRIBUTION_METHODS) | {A.RANDOM} <= set(rows)  # every method, the CAM family too
            assert set(A.ATTRIBUTION_METHODS) == set(data["twins"][twin]["sanity"])
            assert all(row["images"] == data["images"] for row in rows.values())
            rnd, n = rows[A.RANDOM], rows[A.RANDOM]["images"]
            p = rnd["object_share"]
            assert abs(rnd["pointing_game"] - p) < 3.5 * math.sqrt(p * (1 - p) / n)
            assert rnd["mass_inside"] == pytest.approx(p, abs=0.02)
            sanity = data["twins"][twin]["sanity"]
            # as Adebayo et al. found: Guided Backprop fails, Grad-CAM passes
            assert A.sanity_verdict(sanity["Guided Backprop"]["spearman"]).outcome == "fails"
            assert A.sanity_verdict(sanity["Grad-CAM"]["spearman"]).outcome == "passes"


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_precompute_command_writes_a_table_with_a_progress_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tables, "PRECOMPUTED_DIR", tmp_path)
    from resnet_viz.__main__ import main

    assert main(["attributions", "shapes-20", "--twins", "plain", "--images", "2", "--sanity-images", "1"]) == 0
    data = A.load_precomputed("shapes-20")
    assert data["images"] == 2 and set(data["twins"]) == {"plain"}
    assert data["twins"]["plain"]["rows"][-1]["method"] == A.RANDOM
    err = capsys.readouterr().err
    methods, rows = len(A.ATTRIBUTION_METHODS), len(data["twins"]["plain"]["rows"])
    assert "shapes-20 plain: sanity" in err and f"{methods}/{methods}" in err  # one map per method and image
    assert "shapes-20 plain: evaluation" in err and f"{2 * rows}/{2 * rows}" in err


def test_threads_share_one_model(twins, x):
    model = twins[0]
    methods = ["Guided Grad-CAM", "DeepLift", "Saliency", "Grad-CAM"]
    expected = {m: rv.attribute(model, x, method=m, target=1).raw for m in methods}
    results, barrier = {}, threading.Barrier(len(methods) * 2)

    def work(i, m):
        barrier.wait()
        results[(i, m)] = rv.attribute(model, x, method=m, target=1).raw

    threads = [threading.Thread(target=work, args=(i, m)) for i in range(2) for m in methods]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(threads)  # every thread ended with its map (a failed thread leaves none)
    for (_, m), raw in results.items():
        torch.testing.assert_close(raw, expected[m])
    assert _hooks(model) == 0


def test_bad_arguments(twins, x):
    with pytest.raises(ValueError, match="unknown method"):
        rv.attribute(twins[0], x, method="LIME")
    with pytest.raises(ValueError, match="no option"):
        rv.attribute(twins[0], x, method="Saliency", n_steps=3)
    with pytest.raises(ValueError):
        rv.attribute(twins[0], torch.zeros(2, 3, 32, 32))
    with pytest.raises(TypeError):
        rv.attribute(twins[0], np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="unknown layer"):
        rv.attribute(twins[0], x, method="Grad-CAM", layer="layer9")


@pytest.mark.slow  # among the slowest of `-m "not browser and not slow"` (--durations=30)
def test_every_method_runs_on_the_imagenet_layout():
    """torchvision-layout twins (max-pool stem, the ImageNet models' structure): maps at the input's size."""
    resnet, plain = rv.build_twins("resnet18", seed=0)
    x = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    for model in (resnet.eval(), plain.eval()):
        for method in A.ATTRIBUTION_METHODS:
            options = {"n_steps": 4} if method == "Integrated Gradients" else {}
            if "max_channels" in A.METHODS[method].options:
                options = {"max_channels": 16}
            a = rv.attribute(model, x, method=method, target=3, **options)
            assert a.map.shape == (40, 40) and np.isfinite(a.map).all() and a.map.max() <= 1, method
    assert _hooks(resnet) == _hooks(plain) == 0


def test_seeded_methods_give_the_same_map_when_called_from_several_threads_at_once(twins, x):
    """Gradient SHAP and SmoothGrad draw from process-wide generators: concurrent calls take turns, so each gets
    exactly the map a call alone gets."""
    resnet = twins[0]
    for method, options in (
        ("Gradient SHAP", {"n_samples": 8}),
        ("Integrated Gradients", {"smoothgrad": True, "n_steps": 8}),
    ):
        alone = rv.attribute(resnet, x, method=method, target=1, **options).map
        maps, errors = [], []

        def run():
            try:
                maps.append(rv.attribute(resnet, x, method=method, target=1, **options).map)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(maps) == 4
        assert all(np.array_equal(m, alone) for m in maps), method
