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
import numpy as np
import torch

import resnet_viz as rv
from resnet_viz import gradients as grad
from resnet_viz.data import TEST_SEED
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.models import TWINS, twin_label
from resnet_viz.lesion import keeps_shape, lesion_accuracies, random_deletion_accuracies


def url_problem(key: str, raw, allowed, value) -> str:
    """Why a URL setting was ignored, naming the value used instead (shared by the pages whose view is in the URL)."""
    return _("`{key}={raw}` is not valid (choose from {allowed}); using `{value}`.").format(
        key=key, raw=raw, allowed=", ".join(map(str, allowed)), value=value)


def warn_url(problem: str) -> None:
    st.warning(_("Ignored a setting in the URL: {problem}").format(problem=problem), icon=":material/link_off:")


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


MODEL_SOURCES = Labels({
    "shapes-20": N_("Bundled ResNet-20 and Plain-20 (shapes, offline)"),
    "shapes-56": N_("Bundled ResNet-56 and Plain-56 (shapes, offline)"),
    "resnet18": N_("ImageNet ResNet-18 (torchvision weights)"),
    "resnet50": N_("ImageNet ResNet-50 (torchvision weights)"),
})


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
    return imagenet_twins(source) if source in ("resnet18", "resnet50") else bundled_twins(source)


def available_sources() -> list[str]:
    bundled = rv.list_bundled()
    sources = [k for k in MODEL_SOURCES if k in bundled or k in ("resnet18", "resnet50")]
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

    st.info(_("The ImageNet weights for {arch} are not on this machine yet (expected at `{path}`). They are "
              "downloaded once and cached.").format(arch=arch, path=imagenet_weights_path(arch)))
    if st.button(_("Download {arch} weights").format(arch=arch), key=f"download-{arch}"):
        bar = st.progress(0.0, text=_("Connecting…"))

        def progress(done: int, total: int) -> None:
            bar.progress(min(1.0, done / total) if total else 0.0,
                         text=_("{done:.1f} of {total:.1f} MB").format(done=done / 1e6, total=total / 1e6)
                         if total else f"{done / 1e6:.1f} MB")

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
    """Uploader for a visitor's own twins (safetensors or weights-only torch files); app.py puts it in the sidebar."""
    store = session_models()
    with st.expander(_("Your own model"), expanded=store.twins is not None):
        upload = st.file_uploader(
            _("Checkpoint (.safetensors or a torch state dict)"), type=CHECKPOINT_TYPES, key="checkpoint",
            max_upload_size=CHECKPOINT_MAX_MB,
            help=_("Twins saved by `python -m resnet_viz race --save`, or the state dict of a ResNet of a "
                   "supported architecture. Files are read as tensors only; nothing in them is executed. The model "
                   "stays in your session and is forgotten when you close the tab."))
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
        st.success(_("Loaded {arch} with {n} classes. Choose “Your checkpoint” as the model.").format(
            arch=arch, n=build["num_classes"]))


@st.cache_resource
def explain_slots() -> rv.Slots:
    """Server-wide bound on explanations computed at once; the rest wait in line."""
    return rv.Slots(max(2, os.cpu_count() or 2))


def wait_message(placeholder, what: str):
    """An ``on_wait`` callback that tells the visitor why they are waiting."""
    def on_wait(ahead: int) -> None:
        placeholder.info(_("The server is busy: {ahead} {what} ahead of yours. It starts as soon as a slot is "
                           "free.").format(ahead=ahead, what=_(what)), icon=":material/hourglass_top:")
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


# --- computations shared by the full pages and the Lesson (one copy, one cache) ------------------------------------

@st.cache_data(show_spinner=False, max_entries=256)
def twin_flow(arch: str, depth: int, twin: str, norm: str, activation: str, block: str, init: str, batch: str,
              seed: int) -> grad.GradientFlow:
    """One twin's gradient flow on a freshly built model (never a shared one).

    Only a cache miss takes one of the server's work slots; cached views stay instant.
    """
    with explain_slots().hold():
        x, y = grad.example_batch(batch, arch=arch, batch_size=16 if arch == "cifar" else 8, seed=seed)
        resnet, plain = rv.build_twins(arch, seed=seed, depth=depth, norm=norm, activation=activation, block=block,
                                       init=init, num_classes=grad.NUM_CLASSES)
        model = (resnet if twin == "resnet" else plain).to(device())
        return rv.gradient_flow(model, x.to(device()), y.to(device()))


def flow_options(view: dict) -> dict:
    """twin_flow's model options for a Gradient flow view (see resnet_viz.teaching.GRADIENT_FLOW_DEFAULTS)."""
    return dict(norm=view["norm"], activation=view["act"], block=view["block"], init=view["init"],
                batch=view["batch"], seed=view["seed"])


def view_flows(view: dict) -> dict[str, grad.GradientFlow]:
    """Both twins' gradient flow for a Gradient flow view, without widgets (the Lesson and its handout)."""
    depth = view["depth"] if view["arch"] == "cifar" else 0
    return {twin: twin_flow(view["arch"], depth, twin, **flow_options(view)) for twin in TWINS}


N_("Gradients")
N_("Other block design")
N_("computations")
N_("explanations")


def compute_flows(arch: str, depth: int, options: dict, *, what: str) -> dict[str, grad.GradientFlow]:
    """Both twins' gradient flow with a progress bar; ``what`` is an ``N_``-marked label."""
    bar = st.progress(0.0, text=_("{what}: ResNet…").format(what=_(what)))
    flows = {}
    for i, twin in enumerate(TWINS):
        bar.progress(i / 2, text=_("{what}: {twin}, forward + backward (queued if the server is busy)…").format(
            what=_(what), twin=twin_label(twin, lowercase=True)))
        flows[twin] = twin_flow(arch, depth, twin, **options)
    bar.empty()
    return flows


def compute_sweep(options: dict) -> grad.DepthSweep:
    depths = list(grad.SWEEP_DEPTHS)
    ratios: dict[str, list[float]] = {"resnet": [], "plain": []}
    bar = st.progress(0.0, text=_("Depth sweep…"))
    for i, depth in enumerate(depths):
        for twin in TWINS:
            bar.progress((2 * i + (twin == "plain")) / (2 * len(depths)),
                         text=_("Depth sweep: depth {depth}, {twin}…").format(
                             depth=depth, twin=twin_label(twin, lowercase=True)))
            ratios[twin].append(twin_flow("cifar", depth, twin, **options).ratio)
    bar.empty()
    return grad.DepthSweep(depths=depths, ratios=ratios)


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
    curves = {m.twin: random_deletion_accuracies(m, images, labels, ks=ks, samples=samples, seed=0)
              for m in (resnet, plain)}
    return single, curves


def mean_lesion_drops(single: dict) -> dict[str, float]:
    """Accuracy lost on average when one block is deleted, per twin (blocks that cannot be deleted left out)."""
    return {t: r["baseline"] - float(np.mean([v for v in r["per_block"] if v is not None])) for t, r in single.items()}


# --- presenter mode ------------------------------------------------------------------------------------------------

def presenting() -> bool:
    """True in presenter mode (set by the switch in app.py's sidebar)."""
    return bool(st.session_state.get("presenter"))


def for_projector(fig):
    """Larger text and a taller chart in presenter mode; the figure unchanged otherwise."""
    if presenting():
        height = fig.layout.height or 450
        fig.update_layout(font=dict(size=20), height=int(height * 1.35), title_font_size=26)
    return fig
