"""Cached calls and the image picker of the Inside a block page (the library, resnet_viz.inside, does the work).

Results are keyed by model name and input and shared by every session; a cache miss takes a server work slot.
Bundled models are shared and read-only: every call here reads them under their shared lock (the library's).
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
from ui.models import twins_for
from ui.work import work_slot

EXAMPLES_POOL = 500  # shapes test images ranked for each channel
IMAGE_POOL = SHAPES_POOL  # shapes test images to pick the input from: the same pool, numbered alike, as other pages
EVIDENCE_IMAGES = 64  # shapes test images behind the identity share of evidence per depth
DEPTH_MODELS = {"ResNet-20": "shapes-20", "ResNet-56": "shapes-56"}
INPUT_KINDS = Labels(
    {"shape": N_("Shapes test image"), "photo": N_("Sample photo"), "upload": N_("Upload"), "camera": N_("Camera")}
)


def fits_shapes(model) -> bool:
    """Whether a model takes shapes images and names the eight shapes classes (dataset examples, class names)."""
    return model.fc.out_features == len(rv.SHAPE_CLASSES) and model.preprocess.get("size") == 32


def class_name(model, index: int) -> str:
    """A class label in the visitor's language: a shapes class by name, another model's class by its number."""
    if fits_shapes(model):
        return shape_class_name(index)
    names = getattr(model, "class_names", None)
    return names[index] if names else _("class {i}").format(i=index)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_block_maps(model_name: str, model_key: str, input_key: str, _x: torch.Tensor, block: str) -> dict:
    """Both twins' :func:`resnet_viz.block_maps` for one input and block."""
    resnet, plain, _info = twins_for(model_name)
    with work_slot():
        return {m.twin: rv.block_maps(m, _x, block) for m in (resnet, plain)}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_evidence(model_name: str, model_key: str, input_key: str, _x: torch.Tensor) -> dict:
    """Both twins' :func:`resnet_viz.evidence_split` for one input, each for its own predicted class."""
    resnet, plain, _info = twins_for(model_name)
    with work_slot():
        return {m.twin: rv.evidence_split(m, _x) for m in (resnet, plain)}


@st.cache_resource(show_spinner=False, max_entries=64)
def cached_examples(model_name: str, model_key: str, twin: str, block: str) -> rv.DatasetExamples:
    """One block's dataset examples for one twin over the shapes test pool: computed once, then shared.

    The pass stops after the block, so an early block costs a fraction of a forward pass.
    """
    resnet, plain, _info = twins_for(model_name)
    images, _labels, _raw = shapes_pool(EXAMPLES_POOL)
    with work_slot():
        return rv.dataset_examples(resnet if twin == "resnet" else plain, images, [block])


@st.cache_data(show_spinner=False, max_entries=2)
def depth_shares(n_images: int = EVIDENCE_IMAGES) -> dict:
    """The bundled ResNets' evidence split (``{"ResNet-20": split, "ResNet-56": split}``) on shapes test images."""
    images, _labels, _raw = shapes_pool(n_images)
    out = {}
    with work_slot():
        for label, name in DEPTH_MODELS.items():
            if name in rv.list_bundled():
                out[label] = rv.evidence_split(twins_for(name)[0], images)
    return out


@dataclass(frozen=True)
class Picked:
    """The chosen input: model input ``x``, the picture as the model sees it, a cache key, a caption, the label."""

    x: torch.Tensor
    shown: np.ndarray
    key: str
    caption: str
    label: int | None = None


def pick_image(model, kind: str, *, prefix: str) -> Picked | None:
    """The widgets for an input of ``kind`` (see INPUT_KINDS) and the picked image; None while there is none.

    A shapes test image comes from the shapes pool (index widget key ``{prefix}_image``); a photo, an upload or a
    camera picture is decoded, resized and normalised the way ``model`` expects. A bad file gets a message.
    """
    if kind == "shape":
        images, labels, raw = shapes_pool(IMAGE_POOL)
        i = st.slider(_("Test image"), 0, IMAGE_POOL - 1, key=f"{prefix}_image")
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
            st.info(_("Choose a file to see what the twins make of it."), icon=":material/upload:")
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
