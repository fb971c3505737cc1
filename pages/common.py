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
