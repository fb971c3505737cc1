"""The Loss landscape page's curvature panel: the Hessian's extreme eigenvalues at the trained weights."""

from __future__ import annotations

import math

import streamlit as st

from resnet_viz import curvature as cv
from resnet_viz.i18n import N_, _
from resnet_viz.landscape import fits_training_batch, training_batch
from resnet_viz.models import TWINS, twin_label
from ui.models import UPLOAD_SOURCE, session_models
from ui.work import wait_message, work_slot

LIVE_IMAGES, LIVE_STEPS = 16, 12


@st.cache_data(show_spinner=False)
def shipped_curvature() -> dict:
    try:
        return cv.read_curvature_file()
    except ValueError:
        return {"models": {}}


def _metrics(curv: dict[str, cv.Curvature]) -> None:
    cols = st.columns(3 * len(curv))
    for i, twin in enumerate(t for t in TWINS if t in curv):
        c = curv[twin]
        cols[3 * i].metric(_("{twin}: λmax").format(twin=twin_label(twin)), f"{c.lambda_max:.3g}")
        cols[3 * i + 1].metric(_("{twin}: λmin").format(twin=twin_label(twin)), f"{c.lambda_min:.3g}")
        cols[3 * i + 2].metric(
            _("{twin}: |λmin/λmax|").format(twin=twin_label(twin)), f"{c.ratio:.3g}" if math.isfinite(c.ratio) else "–"
        )


def _explain(curv: dict[str, cv.Curvature], source: str) -> None:
    first = next(iter(curv.values()))
    st.caption(
        _(
            "{source}: the training loss on {images} shapes training images, Hessian over all {n:,} parameters, "
            "BatchNorm with its running statistics, {steps} Lanczos steps per eigenvalue."
        ).format(source=source, images=first.images, n=first.parameters, steps=first.steps)
    )
    st.markdown(
        _(
            "- **What they are.** λmax is the steepest upward curvature of the loss at the trained weights, over every "
            "direction in weight space; λmin the most downward one. A negative λmin means the point is a saddle in "
            "some "
            "direction; |λmin/λmax| compares the two (Li et al. §6 map it to judge convexity): near 0, the downward "
            "curvature is tiny next to the upward one.\n"
            "- **Why they complement the surfaces.** They do not depend on the two random directions of the slice: a "
            "random 2-D slice can look like a bowl around a saddle, because the curvature along a random direction "
            "averages all eigenvalues.\n"
            "- **What they cannot say.** Curvature at one point says nothing about the loss further away (the rugged "
            "rim of a surface), and a large λmax alone is not a bad sign: it also depends on the weights' scale. "
            "Lanczos with few steps gives λmax closely and λmin as an estimate."
        )
    )


def curvature_panel(model_key: str) -> None:
    """λmax, λmin and |λmin/λmax| of both twins: shipped for the bundled pairs, computed on request otherwise."""
    st.subheader(_("Curvature at the trained weights: the Hessian's extreme eigenvalues"))
    shipped = shipped_curvature()["models"].get(model_key)
    if shipped:
        _metrics(shipped)
        _explain(shipped, _("Shipped ({command})").format(command=shipped_curvature().get("command", "")))
        return
    if model_key != UPLOAD_SOURCE or session_models().twins is None:
        st.info(
            _(
                "The eigenvalues are shipped for the bundled twins. For a race's twins: when a live race on the "
                "Training race page has finished, download a depth's pair there, upload it in the sidebar under "
                "*Your own model* and choose *Your checkpoint* here; or run `python -m resnet_viz curvature "
                "--checkpoint DIR/race-56.safetensors --out curvature.json` on twins saved by `python -m "
                "resnet_viz race --save DIR`."
            ),
            icon=":material/info:",
        )
        return
    store = session_models()
    key = f"ll_curv_{store.digest}"
    if key not in st.session_state:
        if not st.button(
            _("Compute the eigenvalues ({n} Hessian-vector products per twin)").format(n=2 * LIVE_STEPS),
            key="ll_curv_go",
        ):
            return
        resnet, plain, info = store.twins
        if not fits_training_batch(resnet, info):
            st.error(_("The loss is measured on the bundled shapes images: this checkpoint needs 8 classes at 32×32."))
            return
        bar = st.progress(0.0, text=_("Waiting for a work slot…"))
        x, y = training_batch(info, LIVE_IMAGES)  # a race's twins: their own training images

        def progress(twin: str, done: int, total: int) -> None:
            share = (TWINS.index(twin) + done / total) / len(TWINS)
            bar.progress(
                min(share, 1.0),
                text=_("{twin}: Hessian-vector product {done} of {total}").format(
                    twin=twin_label(twin), done=done, total=total
                ),
            )

        with work_slot(on_wait=wait_message(st.empty(), N_("computations"))):
            st.session_state[key] = cv.twin_curvatures(resnet, plain, x, y, steps=LIVE_STEPS, progress=progress)
        bar.empty()
    curv = st.session_state[key]
    _metrics(curv)
    _explain(curv, _("Your checkpoint"))
