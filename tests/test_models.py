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


@pytest.mark.parametrize("options", [
    dict(norm="none", activation="sigmoid", block="pre"),
    dict(norm="batch", activation="tanh", block="post", shortcut="B"),
    dict(norm="none", activation="relu", block="pre", shortcut="B", width=2, in_channels=1, num_classes=4),
])
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


@pytest.mark.parametrize("bad", [dict(depth=21), dict(norm="group"), dict(activation="gelu"), dict(block="mid"),
                                 dict(width=0)])
def test_bad_options_are_rejected(bad):
    with pytest.raises(ValueError):
        build_twins("cifar", **bad)


def test_twins_are_hook_safe():
    resnet, _ = build_twins("cifar", depth=8)
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o: seen.append(o.clone())) for m in resnet.modules()
               if isinstance(m, torch.nn.ReLU)]
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    resnet(x).sum().backward()
    for h in handles:
        h.remove()
    assert len(seen) == 7 and all((o >= 0).all() for o in seen)
    assert isinstance(resnet, TwinNet)
