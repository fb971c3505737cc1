"""Streamlit glue shared by the pages: cached models, locks, small widgets.

Models cached here are shared by every session and are read-only: code that
registers hooks or runs backward into the weights takes :func:`model_lock` or
works on its own copy.
"""
from __future__ import annotations

import threading

import streamlit as st
import torch

import resnet_viz as rv


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    return rv.best_device()


def device_label() -> str:
    return rv.describe_device(device())


@st.cache_resource(show_spinner="Loading the bundled twins…")
def bundled_twins(name: str):
    """(resnet, plain, info) of a bundled model, on the best device, in eval mode."""
    resnet, plain, info = rv.load_bundled(name, device=device())
    for model in (resnet, plain):
        model.requires_grad_(False)  # shared and read-only: Grad-CAM needs no weight gradients
    return resnet, plain, info


@st.cache_resource
def _locks() -> dict[int, threading.Lock]:
    return {}


_locks_guard = threading.Lock()


def model_lock(model: torch.nn.Module) -> threading.Lock:
    """A server-wide lock for work that mutates a shared model (hooks, .grad, mode)."""
    with _locks_guard:
        return _locks().setdefault(id(model), threading.Lock())


def twin_label(twin: str, *, pretrained_imagenet: bool = False) -> str:
    if twin == "resnet":
        return "ResNet"
    return "Plain twin (skip connections removed)" if pretrained_imagenet else "Plain twin"


MODEL_SOURCES = {
    "shapes-20": "Bundled ResNet-20 and Plain-20 (shapes, offline)",
    "shapes-56": "Bundled ResNet-56 and Plain-56 (shapes, offline)",
    "resnet18": "ImageNet ResNet-18 (torchvision weights)",
    "resnet50": "ImageNet ResNet-50 (torchvision weights)",
}


@st.cache_resource(show_spinner="Loading ImageNet weights…")
def imagenet_twins(arch: str):
    resnet, plain = rv.build_twins(arch, weights="imagenet")
    for model in (resnet, plain):
        model.requires_grad_(False)
        model.to(device())
    return resnet, plain, {"name": arch, "class_names": resnet.class_names}


def twins_for(source: str):
    """(resnet, plain, info) for a key of MODEL_SOURCES."""
    return imagenet_twins(source) if source in ("resnet18", "resnet50") else bundled_twins(source)


def available_sources() -> list[str]:
    bundled = rv.list_bundled()
    return [k for k in MODEL_SOURCES if k in bundled or k in ("resnet18", "resnet50")]


def ensure_imagenet(arch: str) -> bool:
    """True when ImageNet weights are ready; otherwise offer a download with progress."""
    if rv.imagenet_available(arch):
        return True
    from resnet_viz.weights import WeightsUnavailable, download_imagenet_weights, imagenet_weights_path

    st.info(f"The ImageNet weights for {arch} are not on this machine yet "
            f"(expected at `{imagenet_weights_path(arch)}`). They are downloaded once and cached.")
    if st.button(f"Download {arch} weights", key=f"download-{arch}"):
        bar = st.progress(0.0, text="Connecting…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(1.0, done / total) if total else 0.0,
                         text=f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB")

        try:
            download_imagenet_weights(arch, progress=progress)
        except WeightsUnavailable as exc:
            bar.empty()
            st.error(str(exc))
            return False
        st.rerun()
    return False
