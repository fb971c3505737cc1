import urllib.error

import pytest
import torch

import resnet_viz as rv
from resnet_viz import weights


@pytest.fixture
def hub_dir(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(previous)


@pytest.fixture
def offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(weights.urllib.request, "urlopen", refuse)


def test_imagenet_weights_load_from_a_file_placed_in_the_cache(hub_dir, offline):
    reference, _ = rv.build_twins("resnet18", seed=11)
    path = weights.imagenet_weights_path("resnet18")
    assert str(path).startswith(str(hub_dir))
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    assert rv.imagenet_available("resnet18")
    resnet, plain = rv.build_twins("resnet18", weights="imagenet")
    assert torch.equal(resnet.conv1.weight, reference.conv1.weight)
    assert torch.equal(plain.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)  # same weights, no skips
    assert len(resnet.class_names) == 1000 and resnet.class_names[0] == "tench"


def test_offline_without_weights_says_where_to_put_the_file(hub_dir, offline):
    assert not rv.imagenet_available("resnet50")
    with pytest.raises(rv.WeightsUnavailable) as info:
        rv.build_twins("resnet50", weights="imagenet")
    message = str(info.value)
    assert str(weights.imagenet_weights_path("resnet50")) in message and "download" in message
    assert not list(hub_dir.rglob("*.part"))  # no half-written file left behind


def test_a_damaged_cached_file_is_reported(hub_dir):
    path = weights.imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(rv.WeightsUnavailable, match="not a valid checkpoint"):
        rv.build_twins("resnet18", weights="imagenet")


def test_imagenet_weights_only_for_the_standard_architecture():
    with pytest.raises(ValueError, match="ImageNet weights"):
        rv.build_twins("resnet18", weights="imagenet", activation="tanh")


def test_explain_page_offers_the_download_and_reports_no_network(hub_dir, offline):
    import os

    from streamlit.testing.v1 import AppTest

    app = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    at.run()
    at.switch_page("pages/explain.py")
    at.run()
    at.selectbox(key="explain-model").set_value("resnet18").run()
    assert not at.exception
    assert any("not on this machine yet" in i.value for i in at.info)
    next(b for b in at.button if b.label.startswith("Download resnet18")).click().run()
    assert not at.exception
    assert at.error and "Could not download" in at.error[0].value
    assert not at.get("plotly_chart")
