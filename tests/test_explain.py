import threading

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image

import resnet_viz as rv
from resnet_viz import build_twins, explain, load_bundled, make_shapes
from resnet_viz.data import TEST_SEED


def _captum_cam(model, x, layer_module, target):
    attr = LayerGradCam(model, layer_module).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")[0, 0]


def _pearson(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def resnet18():
    model, _ = build_twins("resnet18", seed=0)
    return model


def test_matches_captum_on_random_resnet18(resnet18):
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    exp = explain(resnet18, x, topk=3)
    assert exp.heatmaps.shape == (3, 96, 96)
    assert exp.heatmaps.min() >= 0 and exp.heatmaps.max() <= 1
    for k, cls in enumerate(exp.indices):
        ref = _captum_cam(resnet18, x, resnet18.layer4, int(cls)).detach().numpy()
        assert _pearson(exp.heatmaps[k], ref) >= 0.999


@pytest.mark.parametrize("name", ["shapes-20"])
@pytest.mark.parametrize("layer", [None, "layer2"])
def test_matches_captum_on_bundled_twins(name, layer):
    images, _, _ = make_shapes(4, seed=TEST_SEED)
    for model in load_bundled(name)[:2]:
        layer_module = getattr(model, layer or model.default_layer)
        for i in range(len(images)):
            x = images[i : i + 1]
            exp = explain(model, x, topk=2, layer=layer)
            for k, cls in enumerate(exp.indices):
                ref = _captum_cam(model, x, layer_module, int(cls)).detach().numpy()
                if ref.max() <= 0:  # no positive evidence: both must be all zero
                    assert exp.heatmaps[k].max() == 0
                    continue
                assert _pearson(exp.heatmaps[k], ref) >= 0.999


def test_predictions_match_a_plain_forward():
    resnet, plain, info = load_bundled("shapes-20")
    images, labels, _ = make_shapes(16, seed=TEST_SEED)
    with torch.no_grad():
        probs = torch.softmax(resnet(images), 1)
    for i in range(16):
        exp = explain(resnet, images[i : i + 1], topk=5)
        expected = probs[i].topk(5)
        assert exp.indices.tolist() == expected.indices.tolist()
        np.testing.assert_allclose(exp.probs, expected.values.numpy(), rtol=1e-4, atol=1e-6)
        assert exp.labels[0] == rv.SHAPE_CLASSES[exp.indices[0]]
    assert info["resnet"]["test_accuracy"] >= 0.95


def test_pil_heatmap_has_the_image_size_and_leaves_no_grad(resnet18):
    img = Image.open(rv.sample_images()["chelsea"])
    params = list(resnet18.parameters())
    assert all(p.grad is None for p in params)
    exp = explain(resnet18, img, topk=5)
    assert exp.heatmaps.shape == (5, img.height, img.width)
    assert all(p.grad is None for p in params)
    assert not resnet18.training
    assert np.all(np.diff(exp.probs) <= 0)  # sorted, most likely first


def test_training_mode_is_restored_and_statistics_untouched():
    resnet, _, _ = load_bundled("shapes-20")
    resnet.train()
    before = resnet.bn1.running_mean.clone()
    explain(resnet, make_shapes(1, seed=0)[0], topk=1)
    assert resnet.training
    assert torch.equal(before, resnet.bn1.running_mean)


def test_threads_on_one_shared_model_get_the_sequential_results():
    resnet, _, _ = load_bundled("shapes-20")
    images, _, _ = make_shapes(8, seed=TEST_SEED)
    sequential = [explain(resnet, images[i : i + 1], topk=3) for i in range(8)]
    results = [None] * 8
    barrier = threading.Barrier(8)

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = explain(resnet, images[i : i + 1], topk=3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seq, par in zip(sequential, results):
        assert seq.indices.tolist() == par.indices.tolist()
        np.testing.assert_array_equal(seq.heatmaps, par.heatmaps)
        np.testing.assert_array_equal(seq.probs, par.probs)


def test_localisation_score():
    heat = np.zeros((4, 4))
    heat[1, 1] = 1.0
    heat[3, 3] = 0.5
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    score = rv.localisation(heat, mask)
    assert score["mass_inside"] == pytest.approx(1 / 1.5)
    assert score["peak_inside"] and score["object_share"] == 0.25


def test_bundled_heatmaps_point_at_the_object():
    resnet, _, _ = load_bundled("shapes-20")
    images, labels, masks = make_shapes(40, seed=TEST_SEED)
    inside = [
        rv.localisation(explain(resnet, images[i : i + 1], topk=1).heatmaps[0], masks[i].numpy()) for i in range(40)
    ]
    mass = np.mean([s["mass_inside"] for s in inside])
    share = np.mean([s["object_share"] for s in inside])
    assert mass > share  # more heat on the object than a uniform map would put there


def test_bad_arguments():
    resnet, _, _ = load_bundled("shapes-20")
    with pytest.raises(ValueError):
        explain(resnet, torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="unknown layer"):
        explain(resnet, torch.zeros(1, 3, 32, 32), layer="layer7")
    with pytest.raises(TypeError):
        explain(resnet, np.zeros((32, 32, 3)))
