import copy
import math

import pytest
import torch
import torch.nn.functional as F

import resnet_viz as rv
from resnet_viz.gradients import (
    NUM_CLASSES,
    depth_sweep,
    example_batch,
    first_last_ratio,
    main_path_weights,
    twin_flow,
    twin_flows,
)
from resnet_viz.gradients_plots import (
    count_zeros,
    depth_sweep_figure,
    format_ratio,
    forward_signal_figure,
    gradient_norm_figure,
)


def small_twins(**options):
    return rv.build_twins("cifar", depth=options.pop("depth", 8), num_classes=NUM_CLASSES, **options)


@pytest.fixture(scope="module")
def batch():
    return example_batch("shapes", batch_size=8, seed=0)


def test_layers_are_the_main_path_from_input_to_output(batch):
    x, y = batch
    resnet, plain = small_twins(depth=20)
    norms = rv.gradient_norms(resnet, x, y)
    names = [name for name, _ in norms]
    # A CIFAR ResNet-20 has 20 weight layers: the stem, 9 blocks x 2 convolutions, the classifier.
    assert len(names) == 20
    assert names[0] == "conv1" and names[-1] == "fc"
    assert names[1:3] == ["layer1.0.conv1", "layer1.0.conv2"]
    assert not any("downsample" in name for name in names)
    assert [name for name, _ in rv.gradient_norms(plain, x, y)] == names
    assert all(norm > 0 for _, norm in norms)


def test_bottleneck_network_lists_all_three_convolutions():
    resnet, _ = rv.build_twins("resnet50", num_classes=NUM_CLASSES)
    names = [name for name, _ in main_path_weights(resnet)]
    assert len(names) == 50  # ResNet-50 is named after its 50 main-path weight layers
    assert names[1:4] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3"]


def test_norms_equal_a_plain_training_step(batch):
    x, y = batch
    resnet, _ = small_twins(depth=14)
    reference = copy.deepcopy(resnet).train()
    F.cross_entropy(reference(x), y).backward()
    expected = [w.grad.norm().item() for _, w in main_path_weights(reference)]
    got = [norm for _, norm in rv.gradient_norms(resnet, x, y)]
    assert got == pytest.approx(expected, rel=1e-4)


def test_model_is_left_as_found(batch):
    x, y = batch
    resnet, _ = small_twins()
    resnet.layer2.train()  # a mixed state must come back exactly
    modes = {name: m.training for name, m in resnet.named_modules()}
    state = {k: v.clone() for k, v in resnet.state_dict().items()}
    resnet.fc.weight.requires_grad_(False)
    owned = torch.full_like(resnet.conv1.weight, 7.0)
    resnet.conv1.weight.grad = owned.clone()

    rv.gradient_norms(resnet, x, y)
    rv.gradient_flow(resnet, x, y)
    rv.forward_signals(resnet, x)

    assert {name: m.training for name, m in resnet.named_modules()} == modes
    for k, v in resnet.state_dict().items():  # weights and BatchNorm running statistics
        assert torch.equal(v, state[k]), k
    assert not resnet.fc.weight.requires_grad
    assert torch.equal(resnet.conv1.weight.grad, owned)
    assert all(p.grad is None for name, p in resnet.named_parameters() if name != "conv1.weight")
    assert all(m.track_running_stats for m in resnet.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_batch_stats_flag_selects_batchnorm_statistics(batch):
    x, y = batch
    resnet, _ = small_twins()
    with_batch = [n for _, n in rv.gradient_norms(resnet, x, y)]
    with_running = [n for _, n in rv.gradient_norms(resnet, x, y, batch_stats=False)]  # eval mode as built
    assert with_batch != pytest.approx(with_running, rel=1e-3)


def test_forward_signals_are_block_output_stds(batch):
    x, _ = batch
    resnet, _ = small_twins(depth=14)
    signals = rv.forward_signals(resnet, x, batch_stats=False)
    assert [name for name, _ in signals] == ["stem", *(name for name, _ in resnet.blocks())]
    with torch.no_grad():
        for i, (_, std) in enumerate(signals):
            assert std == pytest.approx(resnet.run(x, 0, i + 1).std().item(), rel=1e-5)


def test_gradient_flow_gives_both_views_in_one_pass(batch):
    x, y = batch
    resnet, _ = small_twins()
    flow = rv.gradient_flow(resnet, x, y)
    norms = rv.gradient_norms(resnet, x, y)
    assert flow.layers == [name for name, _ in norms]
    assert flow.grad_norms == pytest.approx([norm for _, norm in norms])
    assert [s for _, s in rv.forward_signals(resnet, x)] == pytest.approx(flow.signal_std, rel=1e-5)
    assert flow.ratio == flow.grad_norms[0] / flow.grad_norms[-1]
    assert flow.loss > 0 and flow.twin == "resnet"


def test_first_last_ratio_handles_zeros():
    assert first_last_ratio([("a", 2.0), ("b", 4.0)]) == 0.5
    assert first_last_ratio([0.0, 4.0]) == 0
    assert math.isinf(first_last_ratio([1.0, 0.0]))
    assert format_ratio(0.0) == "0 (underflow)" and format_ratio(979.4) == "979"


def test_example_batch_shapes_and_errors():
    x, y = example_batch("noise", arch="resnet18", batch_size=2, seed=3)
    assert x.shape == (2, 3, 224, 224) and y.max() < NUM_CLASSES
    assert torch.equal(x, example_batch("noise", arch="resnet18", batch_size=2, seed=3)[0])
    with pytest.raises(ValueError, match="batch must be one of"):
        example_batch("cats")


# -- measured physics (depth 56, CPU) ------------------------------------------------------------


def test_sigmoid_preactivation_plain_gradient_vanishes_resnet_carries_it():
    flows = twin_flows(depth=56, norm="none", activation="sigmoid", block="pre", init="kaiming", seed=0)
    assert flows["plain"].ratio < 1e-6
    assert flows["resnet"].ratio > 1e-4
    assert count_zeros(flows)["resnet"] == 0


def test_batchnorm_relu_plain_gradient_explodes_toward_the_input():
    flows = twin_flows(depth=56, norm="batch", activation="relu", block="post", init="kaiming", seed=0)
    assert flows["plain"].ratio >= 10 * flows["resnet"].ratio
    assert flows["plain"].ratio > 10  # grows toward the input (Yang et al. 2019)


def test_depth_sweep_plain_ratio_grows_with_depth():
    steps = []
    sweep = depth_sweep((8, 20), norm="batch", activation="relu", block="post", progress=lambda f, t: steps.append(f))
    assert sweep.depths == [8, 20]
    assert sweep.ratios["plain"][1] > 3 * sweep.ratios["plain"][0]
    assert sweep.ratios["plain"][1] > 5 * sweep.ratios["resnet"][1]
    assert steps[0] == 0 and steps[-1] == 1.0


def test_one_twin_at_a_time_measures_exactly_what_the_pair_does():
    options = dict(norm="none", activation="tanh", block="pre", init="xavier", batch="noise", seed=3)
    flows = twin_flows(depth=8, **options)
    for twin in ("resnet", "plain"):
        assert twin_flow("cifar", 8, twin, **options) == flows[twin]  # every number, bit for bit
    x, y = example_batch("noise", batch_size=16, seed=3)  # and what measuring a hand-built twin gives
    _resnet, plain = small_twins(seed=3, norm="none", activation="tanh", block="pre", init="xavier")
    assert rv.gradient_flow(plain, x, y) == flows["plain"]
    with pytest.raises(ValueError, match="twin must be one of"):
        twin_flow("cifar", 8, "vgg")


def test_a_caller_can_measure_each_twin_its_own_way():
    calls = []

    def measure(arch, depth, twin, **options):  # what a cache around twin_flow sees
        calls.append((arch, depth, twin, options))
        return twin_flow(arch, depth, twin, **options)

    sweep = depth_sweep((8, 14), measure=measure, norm="batch", seed=1)
    assert [c[:3] for c in calls] == [
        ("cifar", 8, "resnet"),
        ("cifar", 8, "plain"),
        ("cifar", 14, "resnet"),
        ("cifar", 14, "plain"),
    ]
    assert all(c[3] == {"norm": "batch", "seed": 1} for c in calls)
    assert sweep.ratios["plain"][1] == twin_flows(depth=14, norm="batch", seed=1)["plain"].ratio
    flows = twin_flows("cifar", depth=8, measure=measure, seed=2)
    assert calls[-2:] == [("cifar", 8, "resnet", {"seed": 2}), ("cifar", 8, "plain", {"seed": 2})]
    assert flows["resnet"] == twin_flow("cifar", 8, "resnet", seed=2)


def test_the_sweep_reads_its_default_depths_when_it_runs(monkeypatch):
    monkeypatch.setattr(rv.gradients, "SWEEP_DEPTHS", (8,))
    assert depth_sweep(batch="noise").depths == [8]


# -- figures -------------------------------------------------------------------------------------


def test_figures_are_log_scale_with_both_twins(batch):
    x, y = batch
    flows = {m.twin: rv.gradient_flow(m, x, y) for m in small_twins()}
    fig = gradient_norm_figure(flows)
    assert fig.layout.yaxis.type == "log"
    assert [t.name.split(" — ")[0] for t in fig.data] == ["ResNet", "Plain twin"]
    assert format_ratio(flows["plain"].ratio) in fig.data[1].name
    assert forward_signal_figure(flows).layout.yaxis.type == "log"
    sweep = rv.gradients.DepthSweep(depths=[8, 14], ratios={"resnet": [0.5, 0.4], "plain": [1.0, 0.0]})
    sweep_fig = depth_sweep_figure(sweep)
    assert sweep_fig.data[1].y == (1.0, None)  # an underflowed 0 is a gap, not a broken log axis
