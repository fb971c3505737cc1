import pickle

import pytest
import torch
from conftest import EvilPickle
from safetensors.torch import save_file

import resnet_viz as rv
from resnet_viz.checkpoints import load_checkpoint, save_twins


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_twins_file_round_trip(tmp_path):
    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=3, seed=4, shortcut="B")
    with torch.no_grad():
        plain.fc.weight.add_(1.0)  # the twins may have diverged in training
    names = ["cat", "dog", "cow"]
    path = save_twins(
        tmp_path / "t.safetensors", resnet, plain, {"build": resnet.config | {"depth": 8}, "class_names": names}
    )
    r2, p2, info = load_checkpoint(path)
    assert _same(resnet, r2) and _same(plain, p2)
    assert r2.class_names == names and not r2.training


@pytest.mark.parametrize(
    "arch,kwargs",
    [("cifar", dict(depth=14, num_classes=5)), ("resnet18", {}), ("cifar", dict(depth=8, shortcut="B", width=2))],
)
def test_plain_state_dicts_in_both_formats(tmp_path, arch, kwargs):
    resnet, _ = rv.build_twins(arch, seed=1, **kwargs)
    state = resnet.state_dict()
    torch.save({"state_dict": state}, tmp_path / "m.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "m.safetensors"))
    for name in ("m.pt", "m.safetensors"):
        r2, p2, info = load_checkpoint(tmp_path / name)
        assert _same(resnet, r2)
        assert info["plain_is_resnet_without_skips"]
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(r2(x), resnet(x))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": EvilPickle()}, path)
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump(EvilPickle(), f)
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(ValueError, match="Refused|safely"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(ValueError, match="contains Python objects"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_unusable_files_give_actionable_errors(tmp_path):
    resnet, _ = rv.build_twins("cifar", depth=8)
    good = tmp_path / "good.safetensors"
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, str(good))
    data = good.read_bytes()
    cases = {
        "empty.pt": b"",
        "text.pt": b"hello, I am not a checkpoint",
        "cut.safetensors": data[: len(data) // 2],
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as info:
            load_checkpoint(tmp_path / name)
        assert len(str(info.value)) > 10, name
        assert "Python objects" not in str(info.value), name  # junk is not called a code-carrying pickle
    wrong_shape = {k: v for k, v in resnet.state_dict().items()}
    wrong_shape["fc.weight"] = torch.zeros(10, 7)
    torch.save(wrong_shape, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(tmp_path / "shape.pt")
    torch.save({"foo": torch.zeros(1)}, tmp_path / "keys.pt")
    with pytest.raises(ValueError, match="does not look like a ResNet"):
        load_checkpoint(tmp_path / "keys.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(ValueError, match="limit"):
        load_checkpoint(good, max_bytes=100)


def test_bundled_models_load_through_the_same_path():
    resnet, plain, info = rv.load_bundled("shapes-20")
    assert info["build"]["depth"] == 20 and resnet.class_names == rv.SHAPE_CLASSES
    assert not _same(resnet, plain)  # trained separately


def test_race_cli_save_gives_loadable_twins(tmp_path):
    from resnet_viz.__main__ import main

    code = main(
        [
            "race",
            "--depths",
            "8",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--train-size",
            "64",
            "--test-size",
            "16",
            "--eval-every",
            "3",
            "--snapshot-every",
            "3",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "race.json"),
            "--save",
            str(tmp_path / "models"),
        ]
    )
    assert code == 0
    resnet, plain, info = load_checkpoint(tmp_path / "models" / "race-8.safetensors")
    assert info["build"]["depth"] == 8 and resnet.class_names == rv.SHAPE_CLASSES
    assert not _same(resnet, plain)  # each twin kept its own trained weights
    initial, _ = rv.build_twins(**info["build"])
    assert not torch.equal(initial.conv1.weight, resnet.conv1.weight)  # trained, not the initial weights
