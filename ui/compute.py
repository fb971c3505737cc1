"""Cached library calls shared by the pages and the Lesson: one copy, one cache for every session.

Each wrapper only adds Streamlit's cache (and a work slot on a cache miss) around a
``resnet_viz`` call; the computation itself is the library's.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

import resnet_viz as rv
from resnet_viz import gradients as grad
from resnet_viz.data import TEST_SEED
from resnet_viz.lesion import keeps_shape, lesion_accuracies, random_deletion_accuracies
from ui.models import device, twins_for
from ui.work import work_slot


@st.cache_data(show_spinner=False, max_entries=256)
def cached_twin_flow(
    arch: str, depth: int, twin: str, norm: str, activation: str, block: str, init: str, batch: str, seed: int
) -> grad.GradientFlow:
    """:func:`resnet_viz.gradients.twin_flow` on the app's device; only a cache miss takes a work slot."""
    with work_slot():
        return grad.twin_flow(
            arch,
            depth,
            twin,
            norm=norm,
            activation=activation,
            block=block,
            init=init,
            batch=batch,
            seed=seed,
            device=device(),
        )


def flow_options(view: dict) -> dict:
    """twin_flow's model options for a Gradient flow view (see resnet_viz.teaching.GRADIENT_FLOW_DEFAULTS)."""
    return dict(
        norm=view["norm"],
        activation=view["act"],
        block=view["block"],
        init=view["init"],
        batch=view["batch"],
        seed=view["seed"],
    )


def flow_depth(view: dict) -> int:
    """The depth of a Gradient flow view's networks; 0 for torchvision networks, whose depth is fixed."""
    return view["depth"] if view["arch"] == "cifar" else 0


def view_flows(view: dict) -> dict[str, grad.GradientFlow]:
    """Both twins' gradient flow for a Gradient flow view, without widgets (the Lesson and its handout)."""
    return grad.twin_flows(view["arch"], depth=flow_depth(view), measure=cached_twin_flow, **flow_options(view))


SHAPES_POOL = 200  # test images to pick a single shape from


@st.cache_data(show_spinner=False, max_entries=8)
def shapes_pool(n: int):
    """``n`` shapes test images: (normalised tensors, labels, raw uint8 images)."""
    from resnet_viz.data import make_shapes_raw

    images, labels, _masks = rv.make_shapes(n, seed=TEST_SEED)
    raw, _labels, _masks = make_shapes_raw(n, seed=TEST_SEED)
    return images, labels, raw


@st.cache_data(show_spinner=False, max_entries=16)
def lesion_lab(model_name: str, n_images: int, samples: int, model_key: str = ""):
    """Single-block lesions and random multi-block deletions of both twins, on the shapes test set."""
    resnet, plain, _info = twins_for(model_name)
    images, labels, _raw = shapes_pool(max(n_images, SHAPES_POOL))
    images, labels = images[:n_images], labels[:n_images]
    single = {m.twin: lesion_accuracies(m, images, labels) for m in (resnet, plain)}
    n_candidates = sum(keeps_shape(b) for _name, b in resnet.blocks())
    # A handful of k values keeps the first view within seconds; the curve is smooth anyway.
    ks = sorted({1, 2, 3, *range(5, n_candidates + 1, max(2, n_candidates // 6)), n_candidates})
    curves = {
        m.twin: random_deletion_accuracies(m, images, labels, ks=ks, samples=samples, seed=0) for m in (resnet, plain)
    }
    return single, curves


def mean_lesion_drops(single: dict) -> dict[str, float]:
    """Accuracy lost on average when one block is deleted, per twin (blocks that cannot be deleted left out)."""
    return {t: r["baseline"] - float(np.mean([v for v in r["per_block"] if v is not None])) for t, r in single.items()}


@st.cache_data(show_spinner=False, max_entries=64)
def cached_shattered_line(depth: int, twin: str, init: str, seed: int):
    """:func:`resnet_viz.shattered.cifar_twin_line_gradients` on the app's device; a cache miss takes a work slot."""
    from resnet_viz import shattered

    with work_slot():
        return shattered.cifar_twin_line_gradients(depth, twin, init=init, seed=seed, device=device())
