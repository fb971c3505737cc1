import pytest
import torch
import torchvision

from resnet_viz import build_twins
from resnet_viz.models import TwinNet


def _shared_equal(resnet, plain):
    rs, ps = resnet.state_dict(), plain.state_dict()
    assert set(ps) <= set(rs)
    assert all(torch.equal(rs[k], ps[k]) for k in ps)
    return set(rs) - set(ps)


@pytest.mark.parametrize("depth", [8, 20, 56, 110])
def test_cifar_twins_share_every_common_weight(depth):
    resnet, plain = build_twins("cifar", depth=depth, seed=3)
    only_resnet = _shared_equal(resnet, plain)
    assert only_resnet == set()  # option A shortcuts have no weights
    convs = [m for m in resnet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == depth  # 6n+2 weighted layers: convs plus the classifier
    x = torch.randn(2, 3, 32, 32)
    assert resnet(x).shape == plain(x).shape == (2, 10)
    assert not torch.allclose(resnet(x), plain(x))  # the skips matter


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="none", activation="sigmoid", block="pre"),
        dict(norm="batch", activation="tanh", block="post", shortcut="B"),
        dict(norm="none", activation="relu", block="pre", shortcut="B", width=2, in_channels=1, num_classes=4),
    ],
)
def test_cifar_options(options):
    resnet, plain = build_twins("cifar", depth=14, **options)
    only_resnet = _shared_equal(resnet, plain)
    if options.get("shortcut") == "B":
        assert only_resnet and all("downsample" in k for k in only_resnet)
    x = torch.randn(2, options.get("in_channels", 3), 32, 32)
    assert resnet(x).shape == (2, options.get("num_classes", 10))
    assert not any(getattr(m, "inplace", False) for m in resnet.modules())


def test_same_seed_same_weights_and_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, _ = build_twins("cifar", depth=20, seed=7)
    assert torch.equal(torch.rand(3), expected)  # building does not consume the caller's RNG
    b, _ = build_twins("cifar", depth=20, seed=7)
    c, _ = build_twins("cifar", depth=20, seed=8)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_torchvision_twins_match_torchvision(arch):
    resnet, plain = build_twins(arch, seed=0)
    reference = getattr(torchvision.models, arch)(weights=None).eval()
    reference.load_state_dict(resnet.state_dict())  # same names and shapes
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(resnet(x), reference(x), rtol=1e-4, atol=1e-4)
    only_resnet = _shared_equal(resnet, plain)
    assert only_resnet and all(".downsample." in k for k in only_resnet)


def test_one_activation_module_per_use():
    resnet, _ = build_twins("cifar", depth=14)
    acts = [m for m in resnet.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.Sigmoid, torch.nn.Tanh))]
    assert len(acts) == len({id(m) for m in acts}) == 1 + 2 * 6  # stem + two per block


def test_units_compose_to_forward():
    resnet, plain = build_twins("cifar", depth=20)
    x = torch.randn(2, 3, 32, 32)
    for model in (resnet, plain):
        split = model.unit_index("layer2")
        with torch.no_grad():
            torch.testing.assert_close(model.run(model.run(x, 0, split + 1), split + 1), model(x))
    assert [n for n, _ in resnet.blocks()][:2] == ["layer1.0", "layer1.1"]
    with pytest.raises(ValueError, match="unknown layer"):
        resnet.unit_index("layer9")


@pytest.mark.parametrize(
    "bad", [dict(depth=21), dict(norm="group"), dict(activation="gelu"), dict(block="mid"), dict(width=0)]
)
def test_bad_options_are_rejected(bad):
    with pytest.raises(ValueError):
        build_twins("cifar", **bad)


@pytest.mark.parametrize(
    "arch, options, size",
    [
        ("cifar", dict(depth=8, block="post"), 32),
        ("cifar", dict(depth=8, block="pre", activation="sigmoid", norm="none"), 32),
        ("resnet18", {}, 32),
        ("resnet50", {}, 32),
    ],
)
def test_twins_are_hook_safe(arch, options, size):
    """Hooks see every module's real output: no later in-place op changes it, and each module runs once a pass.

    A forward hook keeps each output by reference with its version counter; an in-place ReLU (or any in-place
    op) after a module bumps that counter. A shared activation module would run more than once. Full backward
    hooks (which refuse outputs modified in place) must each fire once.
    """
    for model in build_twins(arch, **options):
        leaves = [m for m in model.modules() if not list(m.children())]
        outputs, calls, grads = [], {}, {}

        def forward_hook(module, inputs, output):
            calls[module] = calls.get(module, 0) + 1
            outputs.append((module, output, output._version))

        def backward_hook(module, grad_input, grad_output):
            grads[module] = grads.get(module, 0) + 1

        handles = [m.register_forward_hook(forward_hook) for m in leaves]
        handles += [m.register_full_backward_hook(backward_hook) for m in leaves]
        x = torch.randn(2, 3, size, size, requires_grad=True)
        model.train()(x).sum().backward()
        for h in handles:
            h.remove()
        changed = [type(m).__name__ for m, out, version in outputs if out._version != version]
        assert not changed, f"{model.twin}: outputs changed in place after their hook: {changed[:5]}"
        assert set(calls) == set(leaves) and set(calls.values()) == {1}, "a module ran more than once a pass"
        assert set(grads) == set(leaves) and set(grads.values()) == {1}
        assert isinstance(model, TwinNet)
