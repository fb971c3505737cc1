"""Residual vs identity probes: block contributions, gradient split, lesions, path lengths."""

import copy
import math

import numpy as np
import pytest
import torch

import resnet_viz as rv
from resnet_viz.bundled import MODELS_DIR
from resnet_viz.data import TEST_SEED
from resnet_viz.lesion import (
    deletion_accuracies,
    keeps_shape,
    lesion_accuracies,
    path_length_distribution,
    random_deletion_accuracies,
)
from resnet_viz.residual import block_contributions, gradient_split

LESION_IMAGES = 300  # about +-2.5 points of sampling error; small enough for 2 shared CPU cores


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def twins20():
    resnet, plain, _ = rv.load_bundled("shapes-20")
    return resnet, plain


@pytest.fixture(scope="module")
def test_shapes():
    images, labels, _ = rv.make_shapes(LESION_IMAGES, seed=TEST_SEED)
    return images, labels


def mean_drop(result: dict) -> float:
    kept = [v for v in result["per_block"] if v is not None]
    return result["baseline"] - float(np.mean(kept))


# -- block contributions ------------------------------------------------------------------------


def test_one_entry_per_block_with_consistent_numbers(test_shapes):
    # Freshly built twins share every weight (the bundled ones were trained apart).
    resnet, plain = rv.build_twins(depth=20, num_classes=8, seed=1)
    x = test_shapes[0][:16]
    contribs = {m.twin: block_contributions(m, x) for m in (resnet, plain)}
    for twin, model in (("resnet", resnet), ("plain", plain)):
        entries = contribs[twin]
        assert len(entries) == 9
        assert [e["name"] for e in entries] == [name for name, _ in model.blocks()]
        for e in entries:
            assert e["ratio"] == pytest.approx(e["residual_norm"] / e["identity_norm"])
            assert e["spatial_map"].shape == e["resolution"]
            assert (e["spatial_map"] >= 0).all()
        assert [e["resolution"] for e in entries] == [(32, 32)] * 3 + [(16, 16)] * 3 + [(8, 8)] * 3
    # Same weights, same input: the first block's branch is the same in both twins.
    assert contribs["resnet"][0]["residual_norm"] == pytest.approx(contribs["plain"][0]["residual_norm"], rel=1e-5)
    assert contribs["resnet"][0]["identity_norm"] == pytest.approx(contribs["plain"][0]["identity_norm"], rel=1e-5)
    # The ResNet's shortcut always has F's shape; the plain twin's input does not where a block downsamples.
    assert all(-1 <= e["cosine"] <= 1 for e in contribs["resnet"])
    assert [e["cosine"] is None for e in contribs["plain"]] == [not keeps_shape(b) for _, b in plain.blocks()]


def test_contributions_match_a_direct_computation(twins20, test_shapes):
    resnet, _ = twins20
    x = test_shapes[0][:4]
    entry = block_contributions(resnet, x)[1]
    with torch.no_grad():
        h = resnet.run(x, 0, 2)  # stem and block 0: the input of block 1
        block = dict(resnet.blocks())["layer1.1"]
        fx = block.branch(h)
    assert entry["residual_norm"] == pytest.approx(float(fx.flatten(1).norm(dim=1).mean()), rel=1e-5)
    assert entry["identity_norm"] == pytest.approx(float(h.flatten(1).norm(dim=1).mean()), rel=1e-5)
    expected_map = (fx.abs().mean(dim=1) / h.abs().mean()).mean(dim=0).numpy()
    np.testing.assert_allclose(entry["spatial_map"], expected_map, rtol=1e-5)


def test_norms_only_mode_gives_the_same_norms_without_the_extras(twins20, test_shapes):
    images = test_shapes[0][:16]
    for model in twins20:
        full, lean = block_contributions(model, images), block_contributions(model, images, details=False)
        assert [e["ratio"] for e in lean] == pytest.approx([e["ratio"] for e in full])
        assert all(e["cosine"] is None and e["spatial_map"] is None for e in lean)
        assert any(e["cosine"] is not None for e in full)


@pytest.mark.parametrize("options", [dict(block="pre"), dict(shortcut="B"), dict(norm="none", activation="tanh")])
def test_contributions_work_for_other_block_designs(options):
    resnet, plain = rv.build_twins(depth=8, num_classes=4, **options)
    x = torch.randn(2, 3, 32, 32)
    for model in (resnet, plain):
        entries = block_contributions(model, x)
        assert len(entries) == 3
        assert all(math.isfinite(e["ratio"]) for e in entries)
        assert len(gradient_split(model, x)) == 3


def test_model_in_training_mode_is_refused():
    resnet, _ = rv.build_twins(depth=8, num_classes=4)
    resnet.train()
    with pytest.raises(ValueError, match="eval mode"):
        block_contributions(resnet, torch.randn(1, 3, 32, 32))


# -- gradient split ------------------------------------------------------------------------------


def test_gradient_parts_add_up_to_the_input_gradient(twins20, test_shapes):
    resnet, plain = twins20
    x, labels = test_shapes[0][:1], test_shapes[1][:1]
    split = gradient_split(resnet, x, labels)
    assert len(split) == 9
    for index in (0, 4):  # a block with an identity shortcut and one that downsamples
        with torch.no_grad():
            h = resnet.run(x, 0, index + 1)
        h.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(resnet.run(h, index + 1), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, h)
        assert split[index]["input_grad_norm"] == pytest.approx(float(g.norm()), rel=1e-4)
    for e in split:
        assert 0 < e["identity_share"] < 1
        assert e["identity_share"] == pytest.approx(
            e["identity_grad_norm"] / (e["identity_grad_norm"] + e["residual_grad_norm"])
        )
    # The plain twin has no identity path: all of its gradient goes through F.
    assert all(e["identity_grad_norm"] == 0 and e["identity_share"] == 0 for e in gradient_split(plain, x))
    # Activations only: no weight gradient is left behind on the (shared) model.
    assert all(p.grad is None for p in resnet.parameters())


# -- lesions -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesions20(twins20, test_shapes):
    return {m.twin: lesion_accuracies(m, *test_shapes) for m in twins20}


def test_lesion_structure_and_baseline(twins20, test_shapes, lesions20):
    resnet, plain = twins20
    images, labels = test_shapes
    for model in twins20:
        with torch.no_grad():
            accuracy = float((model(images).argmax(1) == labels).float().mean())
        result = lesions20[model.twin]
        assert result["baseline"] == pytest.approx(accuracy)
        assert len(result["per_block"]) == 9
    assert all(v is not None for v in lesions20["resnet"]["per_block"])
    # The plain twin cannot lose its two downsampling blocks (layer2.0 and layer3.0).
    assert [i for i, v in enumerate(lesions20["plain"]["per_block"]) if v is None] == [3, 6]
    with pytest.raises(ValueError, match="cannot delete"):
        deletion_accuracies(plain, images, labels, [(3,)])


def test_deleting_a_block_equals_zeroing_its_branch(twins20, test_shapes, lesions20):
    resnet, _ = twins20
    images, labels = test_shapes
    index = 5
    zeroed = copy.deepcopy(resnet)
    bn = dict(zeroed.blocks())["layer2.2"].bn2  # F ends in this BatchNorm: zero it and F(x) = 0
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()
        accuracy = float((zeroed(images).argmax(1) == labels).float().mean())
    assert lesions20["resnet"]["per_block"][index] == pytest.approx(accuracy)


def test_plain_twin_depends_on_every_block_much_more_than_the_resnet(lesions20):
    # Issue 4: the plain twin loses over 20 points per deleted block, at least 3x what ResNet-20 loses
    # (ResNet averaged over all 9 blocks, downsampling ones included; the plain twin over the 7 it can lose).
    resnet_drop, plain_drop = mean_drop(lesions20["resnet"]), mean_drop(lesions20["plain"])
    assert plain_drop > 0.20
    assert plain_drop >= 3 * resnet_drop


needs_shapes56 = pytest.mark.skipif(
    not (MODELS_DIR / "shapes-56.safetensors").is_file(),
    reason="shapes-56 is not bundled (resnet_viz/assets/models/shapes-56.safetensors)",
)


@needs_shapes56
def test_resnet56_survives_every_single_block_deletion(lesions56):
    assert len(lesions56["per_block"]) == 27
    # No block is indispensable: with any one deleted the ResNet stays far above chance (1/8).
    assert min(lesions56["per_block"]) > 0.5


@needs_shapes56
def test_resnet56_loses_under_five_points_per_deleted_block(lesions56):
    assert mean_drop(lesions56) < 0.05


@pytest.fixture(scope="module")
def lesions56(test_shapes):
    resnet, _, _ = rv.load_bundled("shapes-56")
    images, labels = test_shapes
    return lesion_accuracies(resnet, images[:200], labels[:200])  # 27 blocks: keep the test set small


def test_random_deletions_share_blocks_between_twins(twins20, test_shapes, lesions20):
    images, labels = test_shapes[0][:80], test_shapes[1][:80]
    curves = {m.twin: random_deletion_accuracies(m, images, labels, ks=[0, 2, 7], samples=2, seed=3) for m in twins20}
    for twin, curve in curves.items():
        assert curve["k"] == [0, 2, 7]
        assert curve["candidates"] == [0, 1, 2, 4, 5, 7, 8]
        assert curve["std"][0] == 0 and curve["std"][2] == 0  # nothing, or every candidate, deleted
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["min"], curve["mean"], curve["max"]))
    same = deletion_accuracies(twins20[0], images, labels, [()])[0]
    assert curves["resnet"]["mean"][0] == pytest.approx(same)


# -- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 9, 27, 54])
def test_path_lengths_are_binomial(n):
    dist = path_length_distribution(n)
    assert sum(dist["count"]) == dist["total"] == 2**n
    assert dist["count"] == [math.comb(n, k) for k in range(n + 1)]
    assert sum(dist["fraction"]) == pytest.approx(1)
    assert dist["mean"] == n / 2
    lo, hi = dist["central_95"]
    assert sum(dist["fraction"][lo : hi + 1]) >= 0.95
    if n == 54:  # Veit et al.: 95% of a 54-block ResNet's paths are 19 to 35 blocks long
        assert 18 <= lo <= 20 and 34 <= hi <= 36


def test_path_lengths_reject_bad_depth():
    with pytest.raises(ValueError):
        path_length_distribution(0)


def test_probes_are_safe_on_a_shared_model_from_many_threads(twins20, test_shapes):
    from concurrent.futures import ThreadPoolExecutor

    resnet, _ = twins20
    inputs = [test_shapes[0][i : i + 2] for i in range(0, 8, 2)]
    expected = [
        (block_contributions(resnet, x)[4]["ratio"], gradient_split(resnet, x)[4]["identity_share"]) for x in inputs
    ]
    with ThreadPoolExecutor(4) as pool:
        got = list(
            pool.map(
                lambda x: (block_contributions(resnet, x)[4]["ratio"], gradient_split(resnet, x)[4]["identity_share"]),
                inputs * 2,
            )
        )
    flat = [value for pair in got for value in pair]
    assert flat == pytest.approx([value for pair in expected * 2 for value in pair], rel=1e-5)
    assert all(p.grad is None for p in resnet.parameters())


def test_probes_wait_while_another_thread_changes_the_model(twins20, test_shapes):
    import threading

    from resnet_viz.locks import model_lock

    resnet, _ = twins20
    results = []
    with model_lock(resnet).exclusive():  # e.g. a gradient probe with BatchNorm briefly in training mode
        resnet.train()
        reader = threading.Thread(target=lambda: results.append(block_contributions(resnet, test_shapes[0][:2])))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and not results  # it waits instead of seeing training mode
        resnet.eval()
    reader.join(30)
    assert len(results) == 1 and len(results[0]) == 9
