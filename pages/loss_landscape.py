"""Loss landscape: the loss surface around the trained twins (Li et al. 2018), side by side.

Opens with the surfaces shipped with the package; a visitor can recompute them for another grid, span,
seed or their own checkpoint (in the server's shared work slots, with progress and Stop). The view
(``model``, ``view``) lives in the URL query string.
"""

from __future__ import annotations

import math

import streamlit as st

import resnet_viz as rv
from resnet_viz import landscape as ls
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.landscape_plots import (
    convexity_figure,
    line_figure,
    slice_figure,
    twin_contour_figure,
    twin_surface_figure,
)
from resnet_viz.models import twin_label
from ui.charts import show_chart
from ui.curvature_panel import curvature_panel
from ui.models import UPLOAD_SOURCE, bundled_twins, device, session_models
from ui.routing import route_through_app
from ui.url_state import Choice, UrlState
from ui.work import wait_message, work_slot

route_through_app()

BUNDLED = {"shapes-20": N_("ResNet-20 vs Plain-20"), "shapes-56": N_("ResNet-56 vs Plain-56")}
VIEWS = {
    "contour": N_("Contour"),
    "3d": N_("3-D surface"),
    "slices": N_("1-D slices"),
    "convexity": N_("Convexity map"),
    "path": N_("Optimiser's path"),
}
DEFAULT_VIEW = {"model": "shapes-56", "view": "contour"}
GRID_STEPS = (11, 15, 21, 31)
IMAGE_COUNTS = (32, 64, 128, 256)
FILE_SOURCE = "file"
FILE_MAX_MB = 20
ORIGINS = Labels({"live": N_("Your computation"), "file": N_("Your file"), "shipped": N_("Shipped surfaces")})


def model_choices() -> dict[str, str]:
    choices = {name: label for name, label in BUNDLED.items() if name in rv.list_bundled()}
    if session_models().twins is not None:
        choices[UPLOAD_SOURCE] = N_("Your checkpoint")
    if st.session_state.get("ll_file_doc"):
        choices[FILE_SOURCE] = N_("Your file")
    return choices


def model_label(key: str) -> str:
    if key == UPLOAD_SOURCE:
        return _("Your checkpoint: {name}").format(name=session_models().name)
    if key == FILE_SOURCE:
        return _("Your file: {name}").format(name=st.session_state["ll_file_name"])
    return _(BUNDLED[key])


# The view in the URL: ?model=shapes-20&view=path
URL = UrlState(
    "ll",
    [
        Choice("model", lambda view: model_choices(), DEFAULT_VIEW["model"]),
        Choice("view", VIEWS, DEFAULT_VIEW["view"]),
    ],
)


@st.cache_data(show_spinner=False)
def shipped(name: str) -> dict:
    """The precomputed landscape file of a bundled pair (surfaces, paths, lines, settings)."""
    return ls.read_landscape_file(ls.ASSETS_DIR / f"{name}.json")


def settings_caption(surface: ls.Surface, source: str) -> str:
    return _(
        "{source}: {steps}×{steps} grid over [−{span:g}, {span:g}]², seed {seed}, {images} training images, "
        "BatchNorm with its running statistics."
    ).format(source=source, steps=surface.steps, span=surface.span, seed=surface.seed, images=surface.n_images)


def metrics(surfaces: dict[str, ls.Surface]) -> None:
    cols = st.columns(len(surfaces) * 2)
    for i, (twin, s) in enumerate(surfaces.items()):
        cols[2 * i].metric(
            _("{twin}: loss at the trained weights").format(twin=twin_label(twin)),
            f"{s.centre_loss:.3g}",
            help=_("Training accuracy there: {acc:.1%}.").format(acc=s.centre_accuracy),
        )
        share = s.nonconvex_share
        cols[2 * i + 1].metric(
            _("{twin}: non-convex points").format(twin=twin_label(twin)),
            f"{share:.0%}" if math.isfinite(share) else "–",
            help=_(
                "Share of the grid's interior points where the surface curves down in some "
                "direction: the smaller eigenvalue of the 2×2 Hessian (from the grid by "
                "finite differences) is below −{tol:g} times the larger one's size."
            ).format(tol=ls.NONCONVEX_TOL),
        )


# --- live recomputation ------------------------------------------------------------------------------------


def live_models(key: str):
    if key == UPLOAD_SOURCE:
        twins = session_models().twins
        return twins if twins is not None else None
    return bundled_twins(key)


def checkpoint_problem(resnet, info: dict) -> str | None:
    size = int(resnet.preprocess.get("size", 0))
    if not ls.fits_training_batch(resnet, info):  # a race's twins are measured on their own training images
        return _(
            "This checkpoint has {classes} classes at {size} px. The landscape is measured on the bundled "
            "shapes images, which needs a model for their 8 classes at 32×32. For other data, use the library: "
            "`rv.twin_surfaces(resnet, plain, images, labels)`."
        ).format(classes=resnet.fc.out_features, size=size)
    return None


def live_panel(model_key: str) -> None:
    """Recompute the twins' surfaces for other settings: shared slots, progress, Stop."""
    with st.expander(_("Recompute live"), expanded=model_key == UPLOAD_SOURCE):
        st.caption(
            _(
                "Heavy work: one forward pass over the images per grid point and twin. It runs in the "
                "server's shared work slots; if the server is busy you wait in line."
            )
        )
        c1, c2, c3, c4 = st.columns(4)
        steps = c1.selectbox(_("Grid points per axis"), GRID_STEPS, index=1, key="ll_steps")
        span = c2.number_input(
            _("Span"),
            min_value=0.05,
            max_value=5.0,
            value=1.0,
            step=0.25,
            key="ll_span",
            help=_("The grid covers α, β from −span to span (in filter-normalised units)."),
        )
        seed = c3.number_input(
            _("Seed of the directions"), min_value=0, max_value=2**31 - 1, value=0, step=1, key="ll_seed"
        )
        images = c4.selectbox(_("Training images"), IMAGE_COUNTS, index=2, key="ll_images")
        b1, b2 = st.columns([1, 5])
        go = b1.button(_("Compute"), type="primary", icon=":material/play_arrow:", key="ll_compute")
        stop_slot = b2.empty()
        if not go:
            if st.session_state.pop("ll_running", None):
                st.info(_("Stopped. Nothing was changed; press Compute to start again."), icon=":material/stop:")
            return
        twins = live_models(model_key)
        if twins is None:
            st.error(_("Your checkpoint is no longer loaded; upload it again in the sidebar."))
            return
        resnet, plain, info = twins
        problem = checkpoint_problem(resnet, info)
        if problem:
            st.error(problem, icon=":material/error:")
            return
        stop_slot.button(_("Stop"), icon=":material/stop:", key="ll_stop")
        st.session_state["ll_running"] = True
        status = st.empty()
        bar = st.progress(0.0, text=_("Waiting for a work slot…"))
        x, y = ls.training_batch(info, int(images))  # the bundled batch, or a race's own training images
        x, y = x.to(device()), y.to(device())

        def progress(done: int, total: int) -> None:
            # Each update gives Streamlit a chance to stop the run when Stop (or anything else) is clicked.
            bar.progress(done / total, text=_("Grid point {done} of {total}").format(done=done, total=total))

        try:
            with work_slot(on_wait=wait_message(status, N_("computations"))):
                status.empty()
                surfaces = ls.twin_surfaces(
                    resnet, plain, x, y, span=float(span), steps=int(steps), seed=int(seed), progress=progress
                )
        except ValueError as exc:
            st.session_state.pop("ll_running", None)
            bar.empty()
            st.error(_("The landscape could not be computed: {error}").format(error=exc))
            return
        st.session_state.pop("ll_running", None)
        bar.empty()
        stop_slot.empty()
        for s in surfaces.values():
            s.directions = None  # keep the session small: the seed regenerates them
        st.session_state["ll_live"] = {
            "model": model_key,
            "surfaces": surfaces,
            "digest": session_models().cache_key(model_key),
        }
        st.rerun()  # draw the new surfaces at the top of the page


def live_result(model_key: str) -> dict[str, ls.Surface] | None:
    live = st.session_state.get("ll_live")
    if live and live["model"] == model_key and live["digest"] == session_models().cache_key(model_key):
        return live["surfaces"]
    return None


def early(path: ls.OptimizerPath) -> float:
    losses = [v for v in path.train_loss[:10] if math.isfinite(v)]
    return sum(losses) / max(1, len(losses))


def late(path: ls.OptimizerPath) -> float:
    losses = [v for v in path.train_loss[-10:] if math.isfinite(v)]
    return sum(losses) / max(1, len(losses))


def file_opener() -> None:
    """A landscape file written by the CLI (say, of a race's saved twins with their path), for this session."""
    with st.expander(_("Open a landscape file"), expanded=bool(st.session_state.get("ll_file_doc"))):
        upload = st.file_uploader(
            _("A file written by `python -m resnet_viz landscape … --out FILE.json`"),
            type=["json"],
            key="ll_file",
            max_upload_size=FILE_MAX_MB,
            help=_(
                "For a training race's twins: `python -m resnet_viz race --save DIR`, then "
                "`python -m resnet_viz landscape --checkpoint DIR/race-56.safetensors "
                "--path --out race-56.json` (the path starts from the race's initial "
                "weights)."
            ),
        )
        if upload is None:
            st.session_state.pop("ll_file_doc", None)
            return
        if st.session_state.get("ll_file_id") == upload.file_id and st.session_state.get("ll_file_doc"):
            return
        try:
            doc = ls.read_landscape_file(upload.getvalue())
            if not doc["surfaces"] and not doc["paths"]:
                raise ValueError(_("it holds no surface"))
        except ValueError as exc:
            st.session_state.pop("ll_file_doc", None)
            st.error(_("This file can't be shown: {error}").format(error=exc), icon=":material/error:")
            return
        st.session_state.update(
            ll_file_doc=doc, ll_file_id=upload.file_id, ll_file_name=upload.name[:60], ll_model=FILE_SOURCE
        )


# --- the page ----------------------------------------------------------------------------------------------

st.title(_("Loss landscape"))
st.caption(
    _(
        "The training loss around the trained weights θ, at θ + α·d₁ + β·d₂ for two random directions d₁, d₂ "
        "(Li et al. 2018). Skip connections change its shape. The view is in the page's URL: bookmark it or "
        "share it."
    )
)

URL.read()
file_opener()
choices = model_choices()
if st.session_state.get("ll_model") not in choices:  # an upload or a file was removed
    st.session_state["ll_model"] = DEFAULT_VIEW["model"]
c1, c2 = st.columns([2, 3])
model_key = c1.radio(_("Twins"), list(choices), format_func=model_label, key="ll_model", horizontal=True)
view_key = c2.radio(_("View"), list(VIEWS), format_func=lambda v: _(VIEWS[v]), key="ll_view", horizontal=True)
URL.write()

doc = (
    shipped(model_key)
    if model_key in BUNDLED
    else st.session_state.get("ll_file_doc")
    if model_key == FILE_SOURCE
    else None
)
surfaces = live_result(model_key)
origin = "live"
if surfaces is None and doc is not None:
    surfaces = doc["surfaces"] or None
    origin = "file" if model_key == FILE_SOURCE else "shipped"

if view_key == "path":
    paths = {t: p for t, p in (doc["paths"] if doc is not None else {}).items() if p.surface is not None}
    if not paths:
        st.info(
            _(
                "The optimiser's path is shipped for the bundled twins; for your own checkpoint, record one with "
                "`python -m resnet_viz landscape --checkpoint FILE --path`."
            ),
            icon=":material/info:",
        )
    else:
        pca = {twin: p.surface for twin, p in paths.items() if p.surface is not None}
        metrics(pca)
        show_chart(twin_contour_figure(pca, trajectory=paths), key="ll-path")
        first = next(iter(paths.values()))
        recipe = first.recipe
        if model_key == FILE_SOURCE or set(paths) != {"resnet", "plain"}:
            st.markdown(
                _(
                    "A path of {steps} training steps recorded by the command line, {snapshots} snapshots of "
                    "the weights; the plane is spanned by their two principal directions around the final "
                    "weights (Li et al. §7)."
                ).format(steps=recipe.get("steps", "?"), snapshots=len(first.steps))
            )
        else:
            st.markdown(
                _(
                    "Each twin trained again from the bundled pair's recorded initial weights, for {steps} steps on "
                    "the "
                    "same {images} training images the surfaces use ({optimizer}, batches of {batch}), keeping "
                    "{snapshots} "
                    "snapshots of its weights. The plane is spanned by the two principal directions of those snapshots "
                    "around the final weights (Li et al. §7), so the path lies in it as far as two directions allow. "
                    "The "
                    "training loss fell from about {first:.2f} to {last:.3f} (ResNet) and from {first_p:.2f} to "
                    "{last_p:.3f} (plain twin) in the same number of steps. A small run on few images, not the paper's "
                    "full training runs."
                ).format(
                    steps=recipe.get("steps", "?"),
                    batch=recipe.get("batch_size", "?"),
                    snapshots=len(first.steps),
                    images=recipe.get("train_images", "?"),
                    optimizer=str(recipe.get("optimizer", "?")).replace("adam", "Adam").replace("sgd", "SGD"),
                    first=early(paths["resnet"]),
                    last=late(paths["resnet"]),
                    first_p=early(paths["plain"]),
                    last_p=late(paths["plain"]),
                )
            )
        st.caption(
            " · ".join(
                _("{twin}: the two directions hold {a:.0%} and {b:.0%} of the path's variance").format(
                    twin=twin_label(t), a=p.explained[0], b=p.explained[1]
                )
                for t, p in paths.items()
            )
        )
elif surfaces is None:
    st.info(_("Nothing is precomputed for your checkpoint: open “Recompute live” below."), icon=":material/info:")
else:
    metrics(surfaces)
    if view_key == "contour":
        show_chart(twin_contour_figure(surfaces), key="ll-contour")
    elif view_key == "3d":
        show_chart(twin_surface_figure(surfaces), key="ll-3d")
    elif view_key == "slices":
        show_chart(slice_figure(surfaces), key="ll-slices")
        lines = doc["lines"] if doc is not None and origin != "live" else {}
        if lines:
            show_chart(line_figure(lines), key="ll-lines")
            st.caption(
                _(
                    "The straight line from each twin's initial weights (t = 0) to its trained weights (t = 1), "
                    "Goodfellow et al. (2015). Along this one line the descent looks easy for both; the "
                    "difficulties lie off it."
                )
            )
    else:
        show_chart(convexity_figure(surfaces), key="ll-convexity")
        st.caption(
            _(
                "Blue where the surface curves down in some direction (Li et al., Fig. 9): |λmin/λmax| of the "
                "2×2 Hessian at each interior grid point, 0 where both eigenvalues are positive."
            )
        )
    st.caption(settings_caption(next(iter(surfaces.values())), ORIGINS[origin]))
    if origin == "live" and doc is not None:
        if st.button(_("Back to the shipped surfaces"), key="ll_back"):
            st.session_state.pop("ll_live", None)
            st.rerun()

if model_key != FILE_SOURCE:
    curvature_panel(model_key)

with st.expander(_("How to read this, and what it can't tell"), expanded=True):
    st.markdown(
        _(
            "- **What is drawn.** The loss on {images} training images at θ + α·d₁ + β·d₂, where θ are the trained "
            "weights (the centre, α = β = 0) and d₁, d₂ are random Gaussian directions. BatchNorm uses its running "
            "statistics; biases and BatchNorm parameters are not moved. Colours and heights are on a log scale, the "
            "same for both twins.\n"
            "- **Why filter normalisation.** A network with ReLUs and BatchNorm computes the same function when a "
            "filter's weights are scaled up, but a step of fixed size then matters less. Each filter of d₁ and d₂ is "
            "therefore rescaled to the size of the same filter in θ: a step of 1 changes every filter by its own size, "
            "and surfaces of different networks (or of the two twins) can be compared.\n"
            "- **The summary number.** “Non-convex points” is the share of the grid's interior points where the 2×2 "
            "Hessian of this slice (estimated from neighbouring grid points) has an eigenvalue below −{tol:g} times "
            "the "
            "magnitude of the other: the surface curves down in some direction there. A bowl scores 0.\n"
            "- **A slice can mislead.** The network has hundreds of thousands of weights and this is a 2-D slice "
            "through two random directions. Downward curvature seen in a slice is real, but a bowl-shaped slice does "
            "not "
            "prove that the full loss is convex: the curvature along a random direction is an average of the Hessian's "
            "eigenvalues, so small negative ones hide behind large positive ones. Li et al. checked against the full "
            "Hessian's eigenvalues that the convex-looking regions of their plots have only small negative curvature "
            "and the chaotic ones large negative curvature. Another seed gives other directions: try it below.\n"
            "- **What the paper concluded.** Li, Xu, Taylor, Studer and Goldstein (NeurIPS 2018) found that without "
            "skip connections the landscape turns from nearly convex to chaotic as the network gets deeper (ResNet-20, "
            "56 and 110 without skips), with the chaotic regions reaching the minimiser, while with skip connections "
            "it stays smooth and nearly convex at every depth. The transition to chaos coincides with the depth at "
            "which "
            "plain networks become hard to train, and skip connections prevent it."
        ).format(images=next(iter(surfaces.values())).n_images if surfaces else 128, tol=ls.NONCONVEX_TOL)
    )
    contrast = {}
    for name in BUNDLED:
        try:
            contrast[name] = {t: s.nonconvex_share for t, s in shipped(name)["surfaces"].items()}
        except ValueError:
            continue
    if len(contrast) == 2:
        st.markdown(
            _(
                "- **The bundled twins.** Non-convex points in the shipped surfaces: ResNet-20 {r20:.0%}, Plain-20 "
                "{p20:.0%}; ResNet-56 {r56:.0%}, Plain-56 {p56:.0%}. At depth 20 the twins are close; at depth 56 the "
                "plain twin's surface is far more rugged, and the plain twin is also the one that trained badly (69.8% "
                "test accuracy against 99.8%). The Convexity map shows where: the ResNet's non-convex points lie on "
                "the rim, where the loss levels off far from the minimum; the plain twin's reach its centre. This is "
                "the "
                "paper's contrast, growing with depth, seen on a small data set through one 2-D slice per "
                "network."
            ).format(
                r20=contrast["shapes-20"]["resnet"],
                p20=contrast["shapes-20"]["plain"],
                r56=contrast["shapes-56"]["resnet"],
                p56=contrast["shapes-56"]["plain"],
            )
        )

if model_key != FILE_SOURCE:
    live_panel(model_key)
