"""resnet_viz.inside: block maps, the evidence split and dataset examples, each against an independent computation."""

import copy

import numpy as np
import pytest
import torch

import resnet_viz as rv
from resnet_viz.data import TEST_SEED
from resnet_viz.inside_plots import channel_grid_figure, channels_by_energy, identity_share_figure


@pytest.fixture(scope="module")
def twins56():
    return rv.load_bundled("shapes-56")[:2]


@pytest.fixture(scope="module")
def twins20():
    return rv.load_bundled("shapes-20")[:2]


@pytest.fixture(scope="module")
def images():
    return rv.make_shapes(64, seed=TEST_SEED)[0]


def _manual_input(net, x, block):
    """The block's input, by running the stem and the stages' modules one after another (no TwinNet.run)."""
    h = net.stem(x)
    for stage in net.stage_names:
        for j, module in enumerate(getattr(net, stage)):
            if f"{stage}.{j}" == block:
                return h, module
            h = module(h)
    raise KeyError(block)


@pytest.mark.parametrize("block", ["layer1.0", "layer2.0", "layer3.2"])
def test_block_maps_match_the_block_module_applied_to_its_input(twins20, images, block):
    for net in twins20:
        maps = rv.block_maps(net, images[:4], block)
        with torch.no_grad():
            h, module = _manual_input(net, images[:4], block)
            expected = module(h)
        torch.testing.assert_close(maps.input, h, rtol=0, atol=0)
        torch.testing.assert_close(maps.output, expected, rtol=1e-6, atol=1e-6)
        # post-activation: y = relu(z), z = s(x) + F(x); the plain twin has no shortcut
        torch.testing.assert_close(maps.output, torch.relu(maps.sum))
        if net.residual:
            torch.testing.assert_close(maps.sum, maps.shortcut + maps.branch)
        else:
            assert maps.shortcut is None
            torch.testing.assert_close(maps.sum, maps.branch)
        assert maps.output.shape == maps.branch.shape and maps.output.dim() == 4


def test_a_pre_activation_block_has_no_relu_after_the_sum():
    resnet, _plain = rv.build_twins(depth=8, block="pre", seed=1)
    x = torch.randn(2, 3, 32, 32)
    maps = rv.block_maps(resnet, x, "layer2.0")
    torch.testing.assert_close(maps.output, maps.sum)
    assert (maps.output < 0).any()


def test_block_maps_refuse_an_unknown_block(twins20, images):
    with pytest.raises(ValueError, match="unknown block 'layer9.0'"):
        rv.block_maps(twins20[0], images[:1], "layer9.0")


def _evidence_by_autograd(net, x, block, targets):
    """g · s(x) and g · F(x) at one block, with z built by hand and torch.autograd.grad (no evidence_split)."""
    h, module = _manual_input(net, x, block)
    names = [n for n, _b in net.blocks()]
    fx = module.branch(h).detach()
    sx = module.shortcut(h).detach() if module.residual else None
    z = (fx if sx is None else fx + sx).clone().requires_grad_(True)
    with torch.enable_grad():
        out = net.run(module.act_out(z), names.index(block) + 2)  # units after this block (unit 0 is the stem)
        score = out[torch.arange(len(x)), targets].sum()
        (g,) = torch.autograd.grad(score, z)
    identity = np.zeros(len(x)) if sx is None else (g * sx).flatten(1).sum(1).numpy()
    return identity, (g * fx).flatten(1).sum(1).numpy(), (g * z.detach()).flatten(1).sum(1).numpy()


@pytest.fixture(scope="module")
def twins20_float64(twins20):
    return [copy.deepcopy(net).double() for net in twins20]  # float64: the split is compared to 1e-10


@pytest.mark.parametrize("block", ["layer1.0", "layer2.0", "layer3.2"])
def test_evidence_split_matches_autograd_on_a_hand_built_sum(twins20_float64, images, block):
    x = images[:6].double()
    for net in twins20_float64:
        targets = torch.tensor([0, 1, 2, 3, 4, 5])
        split = rv.evidence_split(net, x, targets)
        identity, branch, total = _evidence_by_autograd(net, x, block, targets)
        row = split.blocks[block]
        np.testing.assert_allclose(row.identity, identity, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(row.branch, branch, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(row.identity + row.branch, total, rtol=1e-10, atol=1e-10)
        if not net.residual:
            assert (row.identity == 0).all() and np.isnan(row.identity_share).sum() == 0
        assert list(split.targets) == targets.tolist()


def test_identity_plus_branch_is_the_evidence_at_the_sum_in_every_block(twins20, images):
    resnet = twins20[0]
    split = rv.evidence_split(resnet, images[:8])
    with torch.no_grad():
        predicted = resnet(images[:8]).argmax(1)
    assert split.targets.tolist() == predicted.tolist()  # the predicted class by default
    for name, row in split.blocks.items():
        _i, _b, total = _evidence_by_autograd(resnet, images[:8], name, predicted)
        np.testing.assert_allclose(row.total, total, rtol=1e-4, atol=1e-4)


def test_evidence_split_leaves_a_shared_model_as_it_was(twins20, images):
    resnet = twins20[0]
    resnet.requires_grad_(False)
    rv.evidence_split(resnet, images[:4])
    assert all(p.grad is None for p in resnet.parameters())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in resnet.modules())
    assert not resnet.training


def test_identity_share_is_computed_from_the_parts(twins20, images):
    split = rv.evidence_split(twins20[0], images[:16])
    for name, row in split.blocks.items():
        expected = np.abs(row.identity) / (np.abs(row.identity) + np.abs(row.branch))
        np.testing.assert_allclose(split.identity_share()[name], expected)
        assert split.median_identity_share()[name] == pytest.approx(float(np.median(expected)))
    plain = rv.evidence_split(twins20[1], images[:16])
    assert all(v == 0 for v in plain.median_identity_share().values())
    csv = split.to_csv().splitlines()
    assert csv[0].startswith("twin,block,image,target,identity,branch") and len(csv) == 1 + 9 * 16


def test_deeper_resnet_sends_more_evidence_along_the_skips(twins20, twins56, images):
    """The measured claim of docs/inside.md: ResNet-56's median identity share is above ResNet-20's."""
    shallow = rv.evidence_split(twins20[0], images)
    deep = rv.evidence_split(twins56[0], images).overall_median_share()
    assert deep > shallow.overall_median_share()
    shares20 = shallow.median_identity_share()
    assert all(v < 0.5 for v in list(shares20.values())[-3:])  # ResNet-20's last three blocks: branch-dominated


def test_evidence_split_checks_its_targets(twins20, images):
    with pytest.raises(ValueError, match="targets"):
        rv.evidence_split(twins20[0], images[:4], [0, 1])
    with pytest.raises(ValueError, match="class indices"):
        rv.evidence_split(twins20[0], images[:2], 8)


def test_dataset_examples_match_a_brute_force_loop_with_a_hook(twins20):
    x = rv.make_shapes(30, seed=TEST_SEED)[0]
    blocks = ("layer2.1", "layer3.2")
    for net in twins20:
        examples = rv.dataset_examples(net, x, list(blocks), batch_size=16)
        seen: dict[str, list] = {b: [] for b in blocks}
        modules = dict(net.blocks())
        handles = [
            modules[b].register_forward_hook(lambda _m, _i, out, b=b: seen[b].append(out.mean(dim=(2, 3))[0]))
            for b in blocks
        ]
        try:
            with torch.no_grad():
                for i in range(len(x)):  # one image at a time, through the whole network
                    net(x[i : i + 1])
        finally:
            for handle in handles:
                handle.remove()
        for block in blocks:
            acts = torch.stack(seen[block]).numpy()  # images x channels
            np.testing.assert_allclose(examples.activations[block], acts, rtol=1e-4, atol=1e-5)
            for channel in (0, 5, acts.shape[1] - 1):
                expected = sorted(range(len(x)), key=lambda i: -acts[i, channel])[:5]
                idx, values = examples.top(block, channel, 5)
                assert list(idx) == expected
                np.testing.assert_allclose(values, acts[expected, channel], rtol=1e-4, atol=1e-5)
            assert examples.top_all(block, 5).tolist()[5] == list(examples.top(block, 5, 5)[0])


def test_dataset_examples_refuse_an_unknown_block_or_channel(twins20):
    x = rv.make_shapes(4, seed=TEST_SEED)[0]
    with pytest.raises(ValueError, match="unknown block"):
        rv.dataset_examples(twins20[0], x, ["layer7.0"])
    examples = rv.dataset_examples(twins20[0], x, ["layer1.0"])
    with pytest.raises(ValueError, match="channels 0 to 15"):
        examples.top("layer1.0", 16)


def test_the_channel_grid_shows_the_strongest_channels_first(twins20, images):
    maps = rv.block_maps(twins20[0], images[:1], "layer1.1")
    order = channels_by_energy(maps.branch)
    energy = maps.branch.pow(2).mean(dim=(0, 2, 3))
    assert energy[order[0]] == energy.max() and energy[order[-1]] == energy.min()
    fig = channel_grid_figure(maps.branch, title="F(x)", n=8)
    assert [a.text for a in fig.layout.annotations] == [f"#{c}" for c in order[:8]]
    assert fig.data[0].zmid == 0  # F(x) has both signs: a diverging scale
    split = rv.evidence_split(twins20[0], images[:8])
    share_fig = identity_share_figure({"ResNet-20": split})
    np.testing.assert_allclose(share_fig.data[0].y, list(split.median_identity_share().values()))
