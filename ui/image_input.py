"""The image picker the pages share: a shapes test image, a sample photo, an upload or a camera picture.

A bad file gets a message, never a traceback; the picture is decoded, resized and normalised the way the model
expects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image

import resnet_viz as rv
from resnet_viz.data import shape_class_name
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.imaging import ACCEPTED_EXTENSIONS, ImageError, image_to_tensor, load_image, resize_for_model
from ui.compute import SHAPES_POOL, shapes_pool

INPUT_KINDS = Labels(
    {"shape": N_("Shapes test image"), "photo": N_("Sample photo"), "upload": N_("Upload"), "camera": N_("Camera")}
)


def fits_shapes(model) -> bool:
    """Whether a model takes shapes images and names the eight shapes classes (dataset examples, class names)."""
    return model.fc.out_features == len(rv.SHAPE_CLASSES) and model.preprocess.get("size") == 32


@dataclass(frozen=True)
class Picked:
    """The chosen input: model input ``x``, the picture as the model sees it, a cache key, a caption, the label."""

    x: torch.Tensor
    shown: np.ndarray
    key: str
    caption: str
    label: int | None = None


def pick_image(model, kind: str, *, prefix: str, default_index: int = 0) -> Picked | None:
    """The widgets for an input of ``kind`` (see INPUT_KINDS) and the picked image; None while there is none.

    A shapes test image comes from the shapes pool (index widget key ``{prefix}_image``); a photo, an upload or a
    camera picture is decoded, resized and normalised the way ``model`` expects. A bad file gets a message.
    """
    if kind == "shape":
        images, labels, raw = shapes_pool(SHAPES_POOL)
        key = f"{prefix}_image"
        if key not in st.session_state:  # a value from the URL (set before the widget) wins over the default
            st.session_state[key] = default_index
        i = st.slider(_("Test image"), 0, SHAPES_POOL - 1, key=key)
        label = int(labels[i])
        caption = _("Test shape #{i}: a {shape}").format(i=i, shape=shape_class_name(label))
        # Twins trained on shapes get the test set's own tensor; other twins their own preprocessing of the picture.
        x = images[i : i + 1] if fits_shapes(model) else image_to_tensor(Image.fromarray(raw[i]), model.preprocess)
        return Picked(x, raw[i], f"shape:{i}", caption, label)
    if kind == "photo":
        samples = rv.sample_images()
        name = st.selectbox(_("Sample photo"), list(samples), format_func=str.title, key=f"{prefix}_photo")
        data = samples[name].read_bytes()
        caption = _("Sample photo '{name}'").format(name=name)
    else:
        if kind == "camera":
            upload = st.camera_input(_("Take a photo"), key=f"{prefix}_camera")
        else:
            upload = st.file_uploader(
                _("Upload an image (PNG, JPEG, WebP, BMP or GIF; at most 20 MB)"),
                type=list(ACCEPTED_EXTENSIONS),
                max_upload_size=20,
                key=f"{prefix}_upload",
            )
        if upload is None:
            if kind == "camera":
                st.info(_("Take a photo to see what the twins make of it."), icon=":material/photo_camera:")
            else:
                st.info(_("Upload a PNG, JPEG, WebP, BMP or GIF image to probe it."), icon=":material/upload:")
            return None
        data = upload.getvalue()
        caption = _("Your image '{name}'").format(name=upload.name)
    try:
        img = load_image(data)
    except ImageError as exc:
        st.error(_("This image cannot be used: {reason}").format(reason=exc), icon=":material/broken_image:")
        return None
    shown = np.asarray(resize_for_model(img, model.preprocess))
    key = "bytes:" + hashlib.sha256(data).hexdigest()
    return Picked(
        image_to_tensor(img, model.preprocess),
        shown,
        key,
        _("{caption} (as the model sees it)").format(caption=caption),
    )
