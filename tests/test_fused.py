"""The fused engine: a group trained as one network equals each member trained alone."""

import copy

import pytest
import torch

from resnet_viz import race as rr
from resnet_viz.data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from resnet_viz.explain import grad_cam
from resnet_viz.fused import FusedGroup, FusedOptimizer, FusionUnsupported, can_fuse, fused_train_step
from resnet_viz.gradients import gradient_norms
from resnet_viz.lesion import deletion_accuracies
from resnet_viz.models import build_twins
from resnet_viz.race.fusion import should_fuse
from resnet_viz.training import Recipe, batch_indices, make_optimizer, train_step

STEPS = 4


@pytest.fixture(autouse=True)
def one_thread():
    """One PyTorch thread: on a shared 2-core machine two threads wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def members(seeds=(0, 1), depth=8):
    """ResNets and plain twins of several seeds, in training mode."""
    out = []
    for seed in seeds:
        out += [m.train() for m in build_twins("cifar", depth=depth, seed=seed, num_classes=4)]
    return out


def train_both(optimizer: str, dtype=torch.float32, steps=STEPS):
    """Train the same nets fused and each alone on its own seed's batches; both sides and the losses."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        images, labels = torch.randn(48, 3, 8, 8, dtype=dtype), torch.randint(0, 4, (48,))
    nets = [m.to(dtype) for m in members()]
    recipes = [
        Recipe(
            steps=steps,
            batch_size=8,
            optimizer=optimizer,
            lr=0.05 if optimizer == "sgd" else 1e-2,
            weight_decay=1e-4,
            warmup_steps=2,
            seed=m.config["seed"],
        )
        for m in nets
    ]
    alone = [copy.deepcopy(m) for m in nets]
    optimizers = [make_optimizer(m, r, fused=True) for m, r in zip(alone, recipes)]
    group = FusedGroup(nets)
    fused_opt = FusedOptimizer(group, recipes)
    orders = [list(batch_indices(len(images), r)) for r in recipes]
    losses_fused, losses_alone = [], []
    for step in range(steps):
        xs = [images[o[step]] for o in orders]
        ys = [labels[o[step]] for o in orders]
        lrs = [r.lr_at(step) for r in recipes]
        losses_fused.append(fused_train_step(group, fused_opt, xs, ys, lrs)[0])
        losses_alone.append([train_step(m, o, x, y, lr)[0] for m, o, x, y, lr in zip(alone, optimizers, xs, ys, lrs)])
    return group, fused_opt, alone, optimizers, losses_fused, losses_alone


def assert_members_equal(group, fused_opt, alone, optimizers, atol, rtol=0.0):
    for i, model in enumerate(alone):
        got, want = group.member_state_dict(i), model.state_dict()
        assert set(got) == set(want)
        for key in want:  # weights, BatchNorm running statistics and batch counts
            torch.testing.assert_close(got[key], want[key], atol=atol, rtol=rtol, msg=f"member {i} {key}")
        state, reference = fused_opt.member_state_dict(i), optimizers[i].state_dict()
        assert set(state["state"]) == set(reference["state"])
        for k, entry in reference["state"].items():
            for name, value in entry.items():
                torch.testing.assert_close(
                    state["state"][k][name].to(value.dtype),
                    value,
                    atol=atol,
                    rtol=rtol,
                    msg=f"member {i} optimiser {k} {name}",
                )
        # The state is an ordinary optimiser's: it loads into one built for the member taken out.
        make_optimizer(group.member(i), fused_opt.recipe).load_state_dict(state)


def test_sgd_group_in_float32_trains_each_member_as_it_trains_alone():
    """Float32 within rounding (a grouped convolution sums in another order than a single one; batches of 8
    through BatchNorm amplify that to ~1e-3 in 4 steps on some seeds), float64 to the last digits."""
    group, fused_opt, alone, optimizers, lf, la = train_both("sgd")
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(la), atol=1e-3, rtol=0)
    assert_members_equal(group, fused_opt, alone, optimizers, atol=3e-3, rtol=1e-2)
    group, fused_opt, alone, optimizers, lf, la = train_both("sgd", torch.float64, steps=2)
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(la), atol=1e-6, rtol=0)  # losses: float32
    assert_members_equal(group, fused_opt, alone, optimizers, atol=1e-9)


def test_adam_group_trains_each_member_as_it_trains_alone():
    """In float64 to the last digits (Adam's first steps divide by tiny second moments, so float32 rounding
    of grouped and single convolutions grows there), and in float32 the first steps' losses agree."""
    group, fused_opt, alone, optimizers, lf, la = train_both("adam", torch.float64, steps=3)
    torch.testing.assert_close(torch.tensor(lf), torch.tensor(la), atol=1e-6, rtol=0)  # losses: float32
    assert_members_equal(group, fused_opt, alone, optimizers, atol=1e-9)
    *_, lf32, la32 = train_both("adam", torch.float32, steps=2)
    torch.testing.assert_close(torch.tensor(lf32), torch.tensor(la32), atol=5e-4, rtol=0)


def test_a_member_taken_out_explains_like_the_same_net_trained_alone():
    """Lesion accuracies, Grad-CAM and gradient norms of ``group.member(i)`` equal those of the member
    trained alone (float64, so no rounding hides a difference)."""
    group, _opt, alone, _optimizers, _lf, _la = train_both("sgd", torch.float64, steps=2)
    images, labels, _ = make_shapes(16, seed=TEST_SEED)
    images = images[:, :, ::4, ::4].double()
    labels = labels % 4
    for i, reference in enumerate(alone):
        taken = group.member(i).double().eval()
        reference.eval()
        assert type(taken) is type(reference) and taken.twin == reference.twin
        deletions = [[], [0]]
        assert deletion_accuracies(taken, images, labels, deletions) == deletion_accuracies(
            reference, images, labels, deletions
        )
        _, ids, cams = grad_cam(taken, images[:1], topk=2)
        _, ids_ref, cams_ref = grad_cam(reference, images[:1], topk=2)
        assert list(ids) == list(ids_ref)
        torch.testing.assert_close(torch.as_tensor(cams), torch.as_tensor(cams_ref), atol=1e-9, rtol=0)
        norms = gradient_norms(taken, images, labels)
        norms_ref = gradient_norms(reference, images, labels)
        assert [n for n, _ in norms] == [n for n, _ in norms_ref]
        torch.testing.assert_close(
            torch.tensor([v for _, v in norms]), torch.tensor([v for _, v in norms_ref]), atol=1e-9, rtol=0
        )


def test_group_gradient_norms_are_each_members_own():
    nets = members(seeds=(0,))
    group = FusedGroup(nets)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    logits = group(group.stack_inputs(x))
    torch.nn.functional.cross_entropy(logits.reshape(-1, 4), y.repeat_interleave(2), reduction="none").view(8, 2).mean(
        0
    ).sum().backward()
    table = group.grad_norms(["conv1.weight", "layer1.0.conv2.weight", "fc.weight"])
    for i, net in enumerate(nets):
        norms = dict(gradient_norms(net, x, y))
        torch.testing.assert_close(
            torch.tensor(table[i]),
            torch.tensor([norms["conv1"], norms["layer1.0.conv2"], norms["fc"]]),
            atol=1e-5,
            rtol=1e-4,
        )


def test_a_diverged_member_leaves_the_others_and_its_own_weights_alone():
    nets = members(seeds=(0,))
    group = FusedGroup(nets)
    recipe = Recipe(steps=2, batch_size=8, optimizer="adam", lr=1e-2, weight_decay=0.0)
    opt = FusedOptimizer(group, [recipe, recipe])
    with torch.no_grad():
        group.net.fc.bias[1, 0] = float("nan")  # member 1 diverged
    before = group.member_state_dict(1)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    losses, _ = fused_train_step(group, opt, [x, x], [y, y], [1e-2, 1e-2])
    assert torch.isfinite(torch.tensor(losses[0])) and not torch.isfinite(torch.tensor(losses[1]))
    after = group.member_state_dict(1)
    assert all(
        torch.equal(before[k].nan_to_num(), after[k].nan_to_num())
        or k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        for k in before
    )
    assert all(torch.isfinite(v).all() for k, v in group.member_state_dict(0).items())


def test_only_networks_of_one_architecture_fuse():
    resnet, plain = build_twins("cifar", depth=8)
    deeper = build_twins("cifar", depth=14)[0]
    assert can_fuse([resnet, plain]) and not can_fuse([resnet, deeper])
    assert not can_fuse(list(build_twins("cifar", depth=8, block="pre")))
    with pytest.raises(FusionUnsupported):
        FusedGroup([resnet, deeper])


def test_the_race_engine_choice():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert should_fuse("auto", cpu, 6, 16) and not should_fuse("auto", cpu, 2, 16)
    assert not should_fuse("auto", cpu, 6, 32) and should_fuse("auto", cuda, 2, 32)
    assert should_fuse("fused", cpu, 2, 32) and not should_fuse("unfused", cuda, 6, 16)


def test_a_fused_race_records_what_the_unfused_race_records():
    """Same nets, seeds and batches: the fused race's curves, test errors, gradient norms and residual
    ratios equal the unfused race's (SGD, float32); the runs' models are the members' weights."""
    tx, ty, _ = make_shapes(96, seed=TRAIN_SEED)
    vx, vy, _ = make_shapes(24, seed=TEST_SEED)
    data = rr.RaceData("shapes", tx[:, :, ::2, ::2], ty, vx[:, :, ::2, ::2], vy, list(SHAPE_CLASSES), "tiny")
    results = {}
    for engine in ("fused", "unfused"):
        config = rr.RaceConfig(
            depths=(8, 14),
            recipe=Recipe(steps=4, batch_size=8, lr=0.05, optimizer="sgd"),
            eval_every=2,
            snapshot_every=2,
            probe_size=8,
            seeds=2,
            engine=engine,
            precision="fp32",
        )
        race = rr.Race(config, data=data, scheduler=rr.RaceScheduler(1)).start()
        assert race.join(60)
        assert race.status == "finished", race.message
        results[engine] = race.to_dict()
        assert race.fused == (engine == "fused")
    fused, unfused = results["fused"]["runs"], results["unfused"]["runs"]
    assert [(r["label"], r["seed"]) for r in fused] == [(r["label"], r["seed"]) for r in unfused]
    assert sorted({r["seed"] for r in fused}) == [0, 1]
    for a, b in zip(fused, unfused):
        for ra, rb in zip(a["history"], b["history"]):
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], abs=2e-4)
            assert (ra["test_error"] is None) == (rb["test_error"] is None)
            if ra["test_error"] is not None:
                assert ra["test_error"] == pytest.approx(rb["test_error"], abs=1e-6)
        for sa, sb in zip(a["snapshots"], b["snapshots"]):
            assert sa["grad_norms"] == pytest.approx(sb["grad_norms"], rel=1e-3, abs=1e-5)
            assert sa["ratios"] == pytest.approx(sb["ratios"], rel=1e-3, abs=1e-5)
