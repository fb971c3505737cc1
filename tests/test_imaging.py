import numpy as np
import pytest
import torch
from image_corpus import bad_files, good_files

import resnet_viz as rv
from resnet_viz.imaging import ImageError, image_to_tensor, load_image

GOOD = good_files()
BAD = bad_files()


@pytest.fixture(scope="module")
def twins():
    return rv.load_bundled("shapes-20")[:2]


@pytest.mark.parametrize("name", list(GOOD))
def test_awkward_images_load_upright_rgb_and_explain(name, twins):
    _, data, size = GOOD[name]
    img = load_image(data)
    assert img.mode == "RGB" and img.size == size
    exp = rv.explain(twins[0], img, topk=2)
    assert exp.heatmaps.shape == (2, size[1], size[0])
    assert np.isfinite(exp.heatmaps).all() and np.isfinite(exp.probs).all()


@pytest.mark.parametrize("name", list(BAD))
def test_hostile_files_are_refused_with_a_reason(name):
    _, data = BAD[name]
    with pytest.raises(ImageError) as info:
        load_image(data)
    message = str(info.value)
    assert len(message) > 15 and "Traceback" not in message


def test_exif_rotation_and_first_frame_are_honoured():
    img = load_image(GOOD["exif-rotated"][1])
    arr = np.asarray(img)
    # The red quadrant was top-left before a 90 degree clockwise turn: now top-right.
    assert arr[2, -3, 0] > 200 and arr[2, -3, 2] < 80
    gif = np.asarray(load_image(GOOD["gif-animated"][1]))
    assert gif[..., 0].mean() > 200 and gif[..., 2].mean() < 50  # the red first frame


def test_transparent_pixels_become_white():
    from PIL import Image

    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    buf = __import__("io").BytesIO()
    img.save(buf, "PNG")
    assert np.asarray(load_image(buf.getvalue())).min() == 255


def test_imagenet_preprocessing_keeps_aspect_and_caps_the_long_side():
    from PIL import Image

    pre = {"size": 224, "resize": "shorter", "mean": (0.5,) * 3, "std": (0.25,) * 3}
    assert image_to_tensor(Image.new("RGB", (400, 300)), pre).shape == (1, 3, 224, 299)
    assert image_to_tensor(Image.new("RGB", (1000, 60)), pre).shape == (1, 3, 32, 448)
    x = image_to_tensor(Image.new("RGB", (10, 10), (255, 255, 255)), pre)
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_decoding_has_a_time_limit():
    _, data, _ = GOOD["large"]
    with pytest.raises(ImageError, match="longer than"):
        load_image(data, timeout=1e-4)
    assert load_image(data).size == (1024, 683)  # the pool is free again afterwards
