"""Cached calls of the Inside a block page (the library, resnet_viz.inside, does the work).

Results are keyed by model name and input and shared by every session; a cache miss takes a server work slot.
Bundled models are shared and read-only: every call here reads them under their shared lock (the library's).
"""

from __future__ import annotations

import streamlit as st
import torch

import resnet_viz as rv
from resnet_viz.data import shape_class_name
from resnet_viz.i18n import _
from ui.compute import shapes_pool
from ui.image_input import fits_shapes
from ui.models import twins_for
from ui.work import work_slot

EXAMPLES_POOL = 500  # shapes test images ranked for each channel
EVIDENCE_IMAGES = 64  # shapes test images behind the identity share of evidence per depth
DEPTH_MODELS = {"ResNet-20": "shapes-20", "ResNet-56": "shapes-56"}


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
