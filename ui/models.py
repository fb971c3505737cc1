"""The models the pages share: the device, cached bundled and ImageNet twins, a visitor's uploaded twins.

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
from resnet_viz.i18n import N_, Labels, _

UPLOAD_SOURCE = "upload"  # the model source of a visitor's own checkpoint
IMAGENET_SOURCES = ("resnet18", "resnet50")
CHECKPOINT_TYPES = ["safetensors", "pt", "pth", "bin"]
CHECKPOINT_MAX_MB = 100
log = logging.getLogger("resnet_twins")


@st.cache_resource(show_spinner=False)
def device() -> torch.device:
    return rv.best_device()


def device_label() -> str:
    return rv.describe_device(device())


@st.cache_resource(show_spinner=False)
def bundled_twins(name: str):
    """(resnet, plain, info) of a bundled model, on the best device, in eval mode."""
    resnet, plain, info = rv.load_bundled(name, device=device())
    for model in (resnet, plain):
        model.requires_grad_(False)  # shared and read-only: Grad-CAM needs no weight gradients
    return resnet, plain, info


MODEL_SOURCES = Labels(
    {
        "shapes-20": N_("Bundled ResNet-20 and Plain-20 (shapes, offline)"),
        "shapes-56": N_("Bundled ResNet-56 and Plain-56 (shapes, offline)"),
        "resnet18": N_("ImageNet ResNet-18 (torchvision weights)"),
        "resnet50": N_("ImageNet ResNet-50 (torchvision weights)"),
    }
)


@st.cache_resource(show_spinner=False)
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
    return imagenet_twins(source) if source in IMAGENET_SOURCES else bundled_twins(source)


def available_sources() -> list[str]:
    bundled = rv.list_bundled()
    sources = [k for k in MODEL_SOURCES if k in bundled or k in IMAGENET_SOURCES]
    return sources + [UPLOAD_SOURCE] if session_models().twins else sources


def source_label(source: str) -> str:
    if source == UPLOAD_SOURCE:
        return _("Your checkpoint: {name}").format(name=session_models().name)
    return MODEL_SOURCES[source]


def ensure_imagenet(arch: str) -> bool:
    """True when ImageNet weights are ready; otherwise offer a download with progress."""
    if rv.imagenet_available(arch):
        return True
    from resnet_viz.weights import WeightsUnavailable, download_imagenet_weights, imagenet_weights_path

    st.info(
        _(
            "The ImageNet weights for {arch} are not on this machine yet (expected at `{path}`). They are "
            "downloaded once and cached."
        ).format(arch=arch, path=imagenet_weights_path(arch))
    )
    if st.button(_("Download {arch} weights").format(arch=arch), key=f"download-{arch}"):
        bar = st.progress(0.0, text=_("Connecting…"))

        def progress(done: int, total: int) -> None:
            bar.progress(
                min(1.0, done / total) if total else 0.0,
                text=_("{done:.1f} of {total:.1f} MB").format(done=done / 1e6, total=total / 1e6)
                if total
                else f"{done / 1e6:.1f} MB",
            )

        try:
            download_imagenet_weights(arch, progress=progress)
        except WeightsUnavailable as exc:
            bar.empty()
            st.error(str(exc))
            return False
        st.rerun()
    return False


# --- per-session state: released when the tab closes ----------------------------------------------


class SessionModels:
    """The twins a visitor uploaded: private to the session, at most one pair."""

    def __init__(self) -> None:
        self.twins = None
        self.name: str | None = None
        self.digest: str | None = None

    def release(self) -> None:
        self.twins = self.name = self.digest = None

    def cache_key(self, source: str) -> str:
        """Part of a cache key that tells this visitor's upload apart from other checkpoints ("" otherwise)."""
        return self.digest if source == UPLOAD_SOURCE else ""


@st.cache_resource(scope="session", on_release=SessionModels.release, show_spinner=False)
def session_models() -> SessionModels:
    return SessionModels()


def checkpoint_sidebar() -> None:
    """Uploader for a visitor's own twins (safetensors or weights-only torch files); app.py puts it in the sidebar."""
    store = session_models()
    with st.expander(_("Your own model"), expanded=store.twins is not None):
        upload = st.file_uploader(
            _("Checkpoint (.safetensors or a torch state dict)"),
            type=CHECKPOINT_TYPES,
            key="checkpoint",
            max_upload_size=CHECKPOINT_MAX_MB,
            help=_(
                "Twins saved by `python -m resnet_viz race --save`, or the state dict of a ResNet of a "
                "supported architecture. Files are read as tensors only; nothing in them is executed. The model "
                "stays in your session and is forgotten when you close the tab."
            ),
        )
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
                    st.error(_("This checkpoint can't be used: {reason}").format(reason=exc))
                    return
            for model in (resnet, plain):
                model.requires_grad_(False)
            store.twins, store.name, store.digest = (resnet, plain, info), upload.name[:60], digest
        build = store.twins[2]["build"]
        arch = build["arch"] if build["arch"] != "cifar" else f"CIFAR ResNet-{build['depth']}"
        st.success(
            _("Loaded {arch} with {n} classes. Choose “Your checkpoint” as the model.").format(
                arch=arch, n=build["num_classes"]
            )
        )
