"""Streamlit glue shared by the pages: cached models, locks, small widgets.

Models cached here are shared by every session and are read-only: library probes
that must change a model's state for a moment take ``resnet_viz.locks.model_lock``;
anything else that registers hooks or trains works on its own copy.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile

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
    """(resnet, plain, info) for a key of MODEL_SOURCES, or UPLOAD_SOURCE."""
    if source == UPLOAD_SOURCE:
        return session_models().twins
    return imagenet_twins(source) if source in ("resnet18", "resnet50") else bundled_twins(source)


def available_sources() -> list[str]:
    bundled = rv.list_bundled()
    sources = [k for k in MODEL_SOURCES if k in bundled or k in ("resnet18", "resnet50")]
    return sources + [UPLOAD_SOURCE] if session_models().twins else sources


def source_label(source: str) -> str:
    if source == UPLOAD_SOURCE:
        return f"Your checkpoint: {session_models().name}"
    return MODEL_SOURCES[source]


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


# --- per-session state: released when the tab closes ----------------------------------------------
UPLOAD_SOURCE = "upload"
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "bin"]
CHECKPOINT_MAX_MB = 100
log = logging.getLogger("resnet_twins")


class SessionModels:
    """The twins a visitor uploaded: private to the session, at most one pair."""

    def __init__(self) -> None:
        self.twins = None
        self.name: str | None = None
        self.digest: str | None = None

    def release(self) -> None:
        self.twins = self.name = self.digest = None

    def cache_key(self, source: str) -> str:
        """Part of a cache key that tells this session's upload apart from other checkpoints ("" otherwise)."""
        return self.digest if source == UPLOAD_SOURCE else ""


@st.cache_resource(scope="session", on_release=SessionModels.release, show_spinner=False)
def session_models() -> SessionModels:
    return SessionModels()


def checkpoint_sidebar() -> None:
    """Sidebar uploader for a visitor's own twins (safetensors or weights-only torch files)."""
    store = session_models()
    with st.sidebar.expander("Your own model", expanded=store.twins is not None):
        upload = st.file_uploader(
            "Checkpoint (.safetensors or a torch state dict)", type=CHECKPOINT_TYPES, key="checkpoint",
            max_upload_size=CHECKPOINT_MAX_MB,
            help="Twins saved by `python -m resnet_viz race --save`, or the state dict of a ResNet of a supported "
                 "architecture. Files are read as tensors only; nothing in them is executed. The model stays in "
                 "your session and is forgotten when you close the tab.")
        if upload is None:
            if store.twins is not None:
                store.release()
            return
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest != store.digest:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "checkpoint")
                with open(path, "wb") as f:
                    f.write(data)
                try:
                    resnet, plain, info = rv.load_checkpoint(path, device=device())
                except ValueError as exc:
                    log.info("checkpoint refused: %s", exc)
                    store.release()
                    st.error(f"This checkpoint can't be used: {exc}")
                    return
            for model in (resnet, plain):
                model.requires_grad_(False)
            store.twins, store.name, store.digest = (resnet, plain, info), upload.name[:60], digest
        build = store.twins[2]["build"]
        arch = build["arch"] if build["arch"] != "cifar" else f"CIFAR ResNet-{build['depth']}"
        st.success(f"Loaded {arch} with {build['num_classes']} classes. Choose “Your checkpoint” as the model.")


@st.cache_resource
def explain_slots() -> rv.Slots:
    """Server-wide bound on explanations computed at once; the rest wait in line."""
    return rv.Slots(max(2, os.cpu_count() or 2))


def wait_message(placeholder, what: str):
    """An ``on_wait`` callback that tells the visitor why they are waiting."""
    def on_wait(ahead: int) -> None:
        placeholder.info(f"The server is busy: {ahead} {what} ahead of yours. It starts as soon as a slot is free.",
                         icon=":material/hourglass_top:")
    return on_wait


class SessionRaces:
    """Training races started in this session; a closed tab's races are stopped."""

    def __init__(self) -> None:
        self.races: list = []

    def track(self, race):
        self.races = [r for r in self.races if not r.done] + [race]
        return race

    def release(self) -> None:
        for race in self.races:
            race.stop()


@st.cache_resource(scope="session", on_release=SessionRaces.release, show_spinner=False)
def session_races() -> SessionRaces:
    return SessionRaces()
