"""Shattered gradients: the measurements, and the claims of Balduzzi et al. (2017) on the paper's own nets."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import resnet_viz as rv
from resnet_viz import shattered as sh


@pytest.fixture(scope="module")
def paper_nets(one_thread):
    return sh.paper_figure_nets()


def test_autocorrelation_of_known_sequences():
    t = np.linspace(0, 1, 200)
    smooth = sh.autocorrelation(np.sin(2 * np.pi * t), 3)
    assert smooth[0] == 1.0 and smooth[1] > 0.99
    alternating = sh.autocorrelation([1, -1] * 50, 2)
    assert alternating[1] == pytest.approx(-0.99) and alternating[2] == pytest.approx(0.98)
    noise = sh.autocorrelation(np.random.default_rng(0).normal(size=4096), 5)
    assert all(abs(r) < 4 / math.sqrt(4096) for r in noise[1:])
    assert math.isnan(sh.autocorrelation([2.0] * 10, 1)[1])
    with pytest.raises(ValueError):
        sh.autocorrelation([1.0, 2.0], 5)


def test_line_gradients_match_autograd_one_point_at_a_time():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 3)).eval()
    x0, v = torch.randn(3, 2, 2), torch.randn(3, 2, 2)
    t = torch.linspace(-1, 1, 9)
    result = sh.line_gradients(net, x0, v, t, output=2, chunk=4)  # three backward passes
    for i, ti in enumerate(t):
        x = (x0 + ti * v).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(net(x)[0, 2], x)
        assert result.directional[i] == pytest.approx(float((g[0] * v).sum()), rel=1e-5, abs=1e-7)
        assert result.outputs[i] == pytest.approx(float(net(x)[0, 2].detach()), rel=1e-5)
    assert len(result.neighbour_correlation) == len(t) - 1
    assert all(-1 - 1e-9 <= c <= 1 + 1e-9 for c in result.neighbour_correlation)


def test_a_linear_model_has_perfectly_correlated_gradients():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    x0, v = torch.randn(12).reshape(3, 2, 2), torch.randn(3, 2, 2)
    result = sh.line_gradients(net, x0, v, torch.linspace(-1, 1, 16))
    assert all(c == pytest.approx(1.0) for c in result.neighbour_correlation)
    assert len(set(round(d, 5) for d in result.directional)) == 1  # the same derivative everywhere


def test_batch_statistics_come_from_the_line_on_a_private_copy():
    net = sh.FullyConnectedNet(3, residual=False, seed=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x0, v, t = sh.paper_line()
    sh.line_gradients(net, x0, v, t, batch_stats=True)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # untouched
    assert not net.training
    net.train()
    with pytest.raises(ValueError, match="training mode"):
        sh.line_gradients(net, x0, v, t)


def test_the_paper_nets_have_the_shapes_of_fig_1():
    plain = sh.FullyConnectedNet(24, residual=False)
    resnet = sh.FullyConnectedNet(50, residual=True)
    width = [m.out_features for m in plain.modules() if isinstance(m, nn.Linear)]
    assert width == [200] * 24 + [1]
    assert sum(isinstance(m, nn.Linear) for m in resnet.modules()) == 51
    assert plain.twin == "plain" and resnet.twin == "resnet"
    x0, v, t = sh.paper_line()
    assert len(t) == 256 and float(t[0]) == -2.0 and float(t[-1]) == 2.0
    with pytest.raises(ValueError):
        sh.FullyConnectedNet(0, residual=False)


def test_deep_plain_net_shatters_where_the_shallow_net_and_the_resnet_do_not(paper_nets):
    """Fig. 1/2: 1-layer and 50-layer ResNet gradients are smooth; the 24-layer plain net's are white noise."""
    lag1 = {key: paper_nets[key].lag1 for key in ("shallow", "plain", "resnet")}
    print("lag-1 autocorrelation, paper's nets with BatchNorm:", {k: round(v, 3) for k, v in lag1.items()})
    white_noise = 2 / math.sqrt(256)
    assert abs(lag1["plain"]) < 2 * white_noise
    assert lag1["shallow"] > 0.9
    assert lag1["resnet"] > lag1["plain"] + 0.3
    assert lag1["shallow"] > lag1["resnet"]


@pytest.mark.slow
def test_plain_correlation_falls_exponentially_the_resnets_sublinearly(one_thread):
    """Across depth, log(lag-1) of the plain nets is closer to linear in L than in log L (exponential decay);
    the ResNets' decays far more slowly: its fitted power law is flatter than the paper's 1/√L."""
    sweep = sh.fc_sweep((1, 2, 4, 8, 12, 16, 24, 32, 50))
    plain = sh.fit_decay(sweep.depths, sweep.lag1["plain"])
    resnet = sh.fit_decay(sweep.depths, sweep.lag1["resnet"])
    print("sweep", sweep.lag1, "\nplain fit", plain, "\nresnet fit", resnet)
    assert plain.better == "exponential"
    assert plain.exponential_rms < plain.power_rms / 1.5
    assert plain.rate < 0.95  # at least 5% of the correlation lost per layer
    assert resnet.exponent < 0.5  # decays more slowly than 1/√L
    assert resnet.rate > plain.rate
    assert max(sweep.depths[i] for i, v in enumerate(sweep.lag1["plain"]) if v > 0.1) < 24
    assert min(sweep.lag1["resnet"]) > 0.3


def test_fit_decay_recovers_known_forms():
    depths = [1, 2, 4, 8, 16, 32]
    exp = sh.fit_decay(depths, [0.9**d for d in depths], floor=1e-6)
    assert exp.better == "exponential" and exp.rate == pytest.approx(0.9)
    power = sh.fit_decay(depths, [d**-0.5 for d in depths])
    assert power.better == "power" and power.exponent == pytest.approx(0.5)
    with pytest.raises(ValueError):
        sh.fit_decay(depths, [0.05] * 6)


def test_predicted_curves_go_through_the_first_point():
    curves = sh.predicted_curves([8, 16, 32], {"plain": 0.8, "resnet": 0.9})
    assert curves["plain"] == pytest.approx([0.8, 0.8 / 256, 0.8 / 2**24])
    assert curves["resnet"] == pytest.approx([0.9, 0.9 / math.sqrt(2), 0.45])


@pytest.mark.slow
def test_cifar_plain_twin_shatters_with_depth_the_resnet_much_less(one_thread):
    """The app's conv twins at initialisation (BatchNorm, ReLU, Kaiming), one line through a shapes image."""
    corr = {
        (d, twin): sh.cifar_twin_line_gradients(d, twin).mean_neighbour_correlation
        for d in (8, 56)
        for twin in rv.models.TWINS
    }
    print("CIFAR twins, mean neighbour correlation of input gradients:", {k: round(v, 3) for k, v in corr.items()})
    plain_drop = corr[8, "plain"] - corr[56, "plain"]
    resnet_drop = corr[8, "resnet"] - corr[56, "resnet"]
    assert plain_drop > 0.5
    assert resnet_drop < plain_drop - 0.2
    assert corr[56, "resnet"] > corr[56, "plain"] + 0.2


def test_trained_bundled_twins_along_a_line(one_thread):
    resnet, plain, _info = rv.load_bundled("shapes-20")
    lines = sh.twins_line_gradients(resnet, plain, at_init=False, points=16)
    assert set(lines) == {"resnet", "plain"}
    for line in lines.values():
        assert len(line.directional) == 16 and all(math.isfinite(d) for d in line.directional)
        assert -1 <= line.lag1 <= 1
    assert not resnet.training and not plain.training


def test_sweep_reports_progress_and_uses_the_measure():
    calls = []
    sweep = sh.shatter_sweep(
        [8, 14],
        lambda d, twin: d / 100 if twin == "resnet" else -d / 100,
        kind="cifar",
        progress=lambda done, total: calls.append((done, total)),
    )
    assert sweep.lag1 == {"resnet": [0.08, 0.14], "plain": [-0.08, -0.14]}
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
