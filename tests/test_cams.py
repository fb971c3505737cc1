"""The CAM family (rv.cams) against pytorch-grad-cam, a test-only dependency, on the same model, layer and target.

pytorch-grad-cam min-max scales each map at the layer's resolution and resizes it to the input with OpenCV's
bilinear ``cv2.resize``; ours is upsampled with ``F.interpolate(mode="bilinear", align_corners=False)`` (the
same half-pixel grid) and divided by its maximum. Both are compared after the same min-max scaling, by Pearson
and Spearman correlation. Its Score-CAM upsamples the masks with ``align_corners=True`` and its Grad-CAM++
adds 1e-6 to a denominator: small differences that the correlations absorb.
"""

import copy
import threading
import warnings

import numpy as np
import pytest
import torch
from test_attribution import _hooks, _state  # noqa: E402  (the shared model's state and hooks)
from torch import nn

import resnet_viz as rv
from resnet_viz import attribution as A
from resnet_viz.attribution import cam_family
from resnet_viz.data import TEST_SEED
from resnet_viz.explain import layer_pass

gradcam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection  # noqa: E402

PEER = {
    "Grad-CAM": gradcam.GradCAM,
    "HiResCAM": gradcam.HiResCAM,
    "Grad-CAM element-wise": gradcam.GradCAMElementWise,
    "Grad-CAM++": gradcam.GradCAMPlusPlus,
    "XGrad-CAM": gradcam.XGradCAM,
    "LayerCAM": gradcam.LayerCAM,
    "EigenGrad-CAM": gradcam.EigenGradCAM,
    "Eigen-CAM": gradcam.EigenCAM,
    "Score-CAM": gradcam.ScoreCAM,
    "Ablation-CAM": gradcam.AblationCAM,
}
ONE_PASS = [m for m in PEER if not A.METHODS[m].expensive]
EIGEN = ("Eigen-CAM", "EigenGrad-CAM")  # a principal component's sign is arbitrary: see _eigen_sign_agrees


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def twins():
    resnet, plain, _ = rv.load_bundled("shapes-20")
    return resnet, plain


@pytest.fixture(scope="module")
def x():
    return rv.make_shapes(2, seed=TEST_SEED)[0][1:2]


@pytest.fixture(scope="module")
def torchvision_pair():
    """torchvision's ResNet-18 with random weights and our ResNet-18 holding the same weights."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18(num_classes=10).eval()
    ours = rv.build_twins("resnet18", seed=0, num_classes=10)[0]
    ours.load_state_dict(theirs.state_dict())
    return ours.eval(), theirs


def _module(model, layer):
    if layer == "stem":
        return model.maxpool
    stage, _, block = layer.partition(".")
    return getattr(model, stage)[int(block)] if block else getattr(model, stage)


def _peer_map(model, x, method, layer, target):
    with warnings.catch_warnings(), PEER[method](model=model, target_layers=[_module(model, layer)]) as cam:
        warnings.simplefilter("ignore")
        cam.batch_size = 64  # Score-CAM's and Ablation-CAM's batches: the maps do not depend on it
        return cam(input_tensor=x.clone(), targets=[ClassifierOutputTarget(target)])[0]


def _minmax(a):
    a = a - a.min()
    return a / a.max() if a.max() > 0 else a


def _pearson(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _eigen_sign_agrees(model, x, method, layer, target):
    """Whether pytorch-grad-cam's SVD picked our orientation of the component (LAPACK's sign is arbitrary; ours
    follows the channels' sum). The projections themselves must agree up to the sign."""
    p = layer_pass(model, x, [target], layer=layer)
    data = p.activations if method == "Eigen-CAM" else p.gradients * p.activations
    theirs = get_2d_projection(data.numpy())[0]
    ours = cam_family.first_component(data)[0].numpy()
    r = _pearson(ours, theirs)
    assert abs(r) > 0.999, (method, r)
    return r > 0


def assert_matches_peer(ours_model, peer_model, x, methods, layer, target):
    ours = rv.cams(ours_model, x, methods=methods, class_ids=[target], layer=layer)
    compared = 0
    for method in methods:
        ref = _minmax(_peer_map(peer_model, x, method, layer, target))
        mine = _minmax(ours.maps[method][0])
        if method in EIGEN and not _eigen_sign_agrees(ours_model, x, method, layer, target):
            p = layer_pass(ours_model, x, [target], layer=layer)
            data = p.activations if method == "Eigen-CAM" else p.gradients * p.activations
            flipped = torch.relu(-cam_family.first_component(data))[:, None]
            mine = _minmax(
                torch.nn.functional.interpolate(
                    flipped, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False
                )[0, 0].numpy()
            )
        assert mine.shape == ref.shape
        if ref.max() == 0:  # no positive evidence: both maps are empty
            assert mine.max() == 0, method
            continue
        compared += 1
        assert _pearson(mine, ref) >= 0.99, (method, layer, _pearson(mine, ref))
        assert A.spearman(mine, ref) >= 0.99, (method, layer, A.spearman(mine, ref))
    return compared


@pytest.mark.parametrize("twin", [0, 1])
@pytest.mark.parametrize("layer", ["layer3", "layer2", "layer1.1", "stem"])
def test_one_pass_cams_equal_pytorch_grad_cam_on_the_bundled_twins(twins, x, twin, layer):
    model = twins[twin]
    target = int(model(x)[0].argmax())
    compared = assert_matches_peer(model, copy.deepcopy(model), x, ONE_PASS, layer, target)
    assert compared >= len(ONE_PASS) - 2  # real comparisons, not empty maps


@pytest.mark.parametrize("method", ["Score-CAM", "Ablation-CAM"])
def test_perturbation_cams_equal_pytorch_grad_cam_on_the_bundled_twins(twins, x, method):
    for model in twins:
        target = int(model(x)[0].argmax())
        assert assert_matches_peer(model, copy.deepcopy(model), x, [method], "layer3", target) == 1


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_one_pass_cams_equal_pytorch_grad_cam_on_torchvision_resnet18(torchvision_pair, layer):
    ours, theirs = torchvision_pair
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    target = int(theirs(x)[0].argmax())
    assert assert_matches_peer(ours, theirs, x, ONE_PASS, layer, target) >= len(ONE_PASS) - 2


def test_perturbation_cams_equal_pytorch_grad_cam_on_torchvision_resnet18(torchvision_pair):
    ours, theirs = torchvision_pair
    x = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    target = int(theirs(x)[0].argmax())
    assert assert_matches_peer(ours, theirs, x, ["Score-CAM", "Ablation-CAM"], "layer2", target) == 2


def test_all_cams_of_the_top_k_come_from_one_pass(twins, x, monkeypatch):
    """One forward through the network and one backward through the head, whatever the methods and k."""
    model = twins[0]
    calls = []
    original = rv.TwinNet.run

    def counting(self, inp, start=0, stop=None):
        calls.append((start, stop))
        return original(self, inp, start, stop)

    monkeypatch.setattr(rv.TwinNet, "run", counting)
    result = rv.cams(model, x, topk=3)
    assert calls == [(0, model.unit_index("layer3") + 1), (model.unit_index("layer3") + 1, None)]
    assert list(result.maps) == list(A.cam_methods(perturbation=False)) and len(result.indices) == 3
    for name, maps in result.maps.items():
        assert maps.shape == (3, 32, 32) and maps.min() >= 0 and maps.max() <= 1, name
    # Grad-CAM from the family is the Grad-CAM of rv.explain
    np.testing.assert_allclose(result.maps["Grad-CAM"], rv.explain(model, x, topk=3).heatmaps, atol=1e-6)
    # each class's map is the map computed for that class alone
    alone = rv.cams(model, x, class_ids=[int(result.indices[2])])
    for name in result.maps:
        np.testing.assert_allclose(result.maps[name][2], alone.maps[name][0], atol=1e-5, err_msg=name)


def test_every_cam_runs_through_attribute_and_the_evaluation(twins, x):
    model = twins[1]
    for name in A.cam_methods():
        a = rv.attribute(model, x, method=name, target=2, layer="layer2")
        assert a.raw.shape == (1, 1, 16, 16) and a.map.shape == (32, 32), name
        assert A.METHODS[name].takes_layer and A.METHODS[name].citation
        np.testing.assert_allclose(
            a.map,
            rv.cams(model, x, methods=[name], class_ids=[2], layer="layer2").maps[name][0],
            atol=1e-5,
            err_msg=name,
        )
    rows = A.evaluate_attributions(
        model, rv.make_shapes(2, seed=TEST_SEED)[0], [0, 1], None, methods=["Score-CAM", "LayerCAM"], steps=4
    )
    assert [r["method"] for r in rows] == ["Score-CAM", "LayerCAM", A.RANDOM]


def test_perturbation_cams_report_progress_limit_channels_and_stop(twins, x):
    model = twins[0]
    progress = []
    full = rv.cams(
        model,
        x,
        methods=["Score-CAM", "Ablation-CAM"],
        topk=2,
        batch_size=16,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    channels = model.layer3[-1].conv2.out_channels
    assert progress[-1] == (2 * channels, 2 * channels) and len(progress) == 2 * -(-channels // 16)
    limited = rv.cams(model, x, methods=["Ablation-CAM"], topk=2, max_channels=8, batch_size=3)
    assert not np.allclose(limited.maps["Ablation-CAM"], full.maps["Ablation-CAM"])
    act = layer_pass(model, x, gradients=False).activations
    assert len(cam_family.chosen_channels(act, 8)) == 8
    calls = []
    with pytest.raises(A.CamsCancelled):
        rv.cams(
            model,
            x,
            methods=["Score-CAM"],
            batch_size=8,
            should_stop=lambda: len(calls) >= 2,
            on_progress=lambda done, total: calls.append(done),
        )
    flat = act[0].flatten(1)
    constant = int((flat.amax(dim=1) == flat.amin(dim=1)).sum())  # all scored by one blank input, counted first
    assert calls == [constant + 8, constant + 16]
    with pytest.raises(ValueError, match="max_channels"):
        rv.cams(model, x, methods=["Score-CAM"], max_channels=0)


def test_eigen_cams_sign_follows_the_channels_sum():
    maps = torch.zeros(1, 3, 4, 4)
    maps[0, :, 1, 1] = torch.tensor([5.0, 4.0, 6.0])  # one position fires in every channel
    proj = cam_family.first_component(maps)[0]
    assert proj[1, 1] > 0 and proj[1, 1] == proj.max()
    assert cam_family.first_component(-maps)[0][1, 1] < 0  # the sum is negative there: so is the map


@pytest.mark.parametrize("training", [False, True])
def test_the_shared_model_is_left_as_it_was(x, training):
    model, _, _ = rv.load_bundled("shapes-20")
    model.requires_grad_(True)  # the worst case: gradients could land in .grad
    model.train(training)
    before = _state(model)
    rv.cams(model, x, methods=list(A.cam_methods()), topk=2, max_channels=4)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training == training for m in model.modules())
    assert _hooks(model) == 0 and all(p.grad is None for p in model.parameters())


def test_threads_share_one_model(twins, x, monkeypatch):
    model = twins[0]
    shared = set(model.modules())
    on_shared = []
    original = nn.Module.register_forward_hook
    monkeypatch.setattr(
        nn.Module,
        "register_forward_hook",
        lambda self, *a, **k: (on_shared.append(self in shared), original(self, *a, **k))[1],
    )
    methods = [*A.cam_methods(perturbation=False), "Ablation-CAM"]
    expected = rv.cams(model, x, methods=methods, topk=2).maps
    results, barrier = [], threading.Barrier(4)

    def work():
        barrier.wait()
        results.append(rv.cams(model, x, methods=methods, topk=2).maps)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and not on_shared
    for maps in results:
        for name in methods:
            np.testing.assert_allclose(maps[name], expected[name], atol=1e-6)


def test_bad_arguments(twins, x):
    with pytest.raises(ValueError, match="not a CAM method"):
        rv.cams(twins[0], x, methods=["Saliency"])
    with pytest.raises(ValueError, match="unknown method"):
        rv.cams(twins[0], x, methods=["FullGrad"])
    with pytest.raises(ValueError, match="unknown layer"):
        rv.cams(twins[0], x, layer="layer9")
    with pytest.raises(ValueError, match="topk"):
        rv.cams(twins[0], x, topk=0)
    with pytest.raises(ValueError, match="at least one"):
        rv.cams(twins[0], x, methods=[])


def test_a_formula_that_weighs_gradients_says_so_on_a_pass_without_them(twins, x):
    from resnet_viz.explain import layer_pass

    p = layer_pass(twins[0], x, [2], gradients=False)
    job = cam_family.Perturbation(twins[0], x)
    assert cam_family.eigen_cam(p, job).shape == p.activations.shape[:1] + p.activations.shape[2:]
    for formula in (cam_family.grad_cam, cam_family.grad_cam_plus_plus, cam_family.eigengrad_cam):
        with pytest.raises(ValueError, match="without gradients"):
            formula(p, job)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cams_on_cuda_equal_the_cpu_maps(x):
    model = copy.deepcopy(rv.load_bundled("shapes-20")[0]).eval()
    methods = list(A.cam_methods())
    on_cpu = rv.cams(model, x, methods=methods, topk=3).maps
    on_gpu = rv.cams(model.cuda(), x.cuda(), methods=methods, topk=3).maps
    for name in methods:
        np.testing.assert_allclose(on_gpu[name], on_cpu[name], atol=1e-3, err_msg=name)
