"""Residual vs identity: how much does F(x) change the signal, and how much does a ResNet need each block?"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import streamlit as st

import resnet_viz as rv
from resnet_viz import residual_plots as plots
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.lesion import path_length_distribution
from resnet_viz.models import TWINS, twin_label
from resnet_viz.residual import block_contributions, gradient_split
from ui.charts import show_chart
from ui.compute import SHAPES_POOL, lesion_lab, mean_lesion_drops, shapes_pool
from ui.image_input import fits_shapes, pick_image
from ui.models import UPLOAD_SOURCE, session_models, source_label, twins_for
from ui.routing import route_through_app
from ui.work import wait_message, work_slot

route_through_app()

BATCH_SIZE = 64
INPUTS = Labels(
    {
        "shape": N_("Shapes test image"),
        "batch": N_("Batch of shapes"),
        "photo": N_("Sample photo"),
        "upload": N_("Upload"),
    }
)
PLOT_CONFIG = {"displaylogo": False}
AUTO_LESION_MAX_BLOCKS = 9  # deeper twins run the lesion lab on request


# -- cached computations: keyed by model name and input, shared by all sessions -------------------


@st.cache_data(show_spinner=False, max_entries=64)
def probe(model_name: str, input_key: str, _x, model_key: str = ""):
    """Block contributions of both twins and the ResNet's gradient split, for one input."""
    resnet, plain, _info = twins_for(model_name)
    contribs = {m.twin: block_contributions(m, _x) for m in (resnet, plain)}
    return contribs, gradient_split(resnet, _x)


@st.cache_resource
def finished_labs() -> set:
    """(model, number of images) pairs whose lesion lab is already in the cache."""
    return set()


@contextmanager
def bounded_work():
    """Share the server's pool of work slots with the other pages; say so while waiting."""
    waiting = st.empty()
    with work_slot(on_wait=wait_message(waiting, N_("computations"))):
        waiting.empty()
        yield


# -- input ----------------------------------------------------------------------------------------


def choose_input(model):
    """Widgets for the input. Returns (x, display image H x W x 3 uint8, cache key, caption) or None."""
    source = st.radio(_("Input"), list(INPUTS), format_func=INPUTS.get, horizontal=True, key="residual_source")
    if source == "batch":
        images, _labels, raw = shapes_pool(SHAPES_POOL)
        mean_image = raw[:BATCH_SIZE].mean(axis=0).astype(np.uint8)
        return (
            images[:BATCH_SIZE],
            mean_image,
            f"batch:{BATCH_SIZE}",
            _("{n} test shapes: numbers averaged over the batch, maps drawn over the mean image").format(n=BATCH_SIZE),
        )
    picked = pick_image(model, source, prefix="residual", default_index=3)
    return None if picked is None else (picked.x, picked.shown, picked.key, picked.caption)


def chart(fig, **kwargs):
    show_chart(fig, config=PLOT_CONFIG, **kwargs)


# -- page -----------------------------------------------------------------------------------------

st.title(_("Residual vs identity"))
st.markdown(
    _(
        "A residual block outputs **y = F(x) + x**. How much does the learned branch **F(x)** change the signal "
        "compared with the identity **x** it is added to, and how much does a trained ResNet depend on each block? "
        "Here F(x) is the branch's output *before* the block's final ReLU, and x is the shortcut (the block's "
        "input, subsampled and zero-padded where a block halves the resolution). For the plain twin, which has no "
        "shortcut, F(x) is compared with the block's input."
    )
)

available = rv.list_bundled()
if not available:
    st.error(_("No bundled twins found; run `python -m resnet_viz train-bundled`."))
    st.stop()
if session_models().twins:
    available = [*available, UPLOAD_SOURCE]


def model_label(name: str) -> str:
    if name == UPLOAD_SOURCE:
        return source_label(name)
    return _("Bundled {name} (depth {depth}, trained on shapes)").format(name=name, depth=name.split("-")[-1])


model_labels = {model_label(n): n for n in available}
# The labels change with the language, which resets the widget: start it at the model chosen last time.
chosen = st.session_state.get("residual_model_name")
index = list(model_labels.values()).index(chosen) if chosen in available else 0
model_name = model_labels[st.selectbox(_("Twins"), list(model_labels), index=index, key="residual_model")]
st.session_state["residual_model_name"] = model_name
resnet, plain, info = twins_for(model_name)
model_key = session_models().cache_key(model_name)
names = [name for name, _block in resnet.blocks()]

st.header(_("1. F(x) next to x, block by block"))
chosen = choose_input(resnet)
if chosen is not None:
    x, shown, input_key, caption = chosen
    with bounded_work(), st.spinner(_("Probing every block…")):
        contribs, grads = probe(model_name, input_key, x, model_key)
    left, right = st.columns(2)
    with left:
        chart(plots.ratio_figure(contribs))
    with right:
        chart(plots.cosine_figure(contribs))
    median = {t: float(np.median([e["ratio"] for e in contribs[t]])) for t in contribs}
    below = median["resnet"] < median["plain"]
    text = _(
        "Median ‖F(x)‖/‖x‖ over the blocks: **{resnet:.2f}** for the ResNet, **{plain:.2f}** for the plain "
        "twin. The twins started from the same weights but were trained apart, so even their first blocks now "
        "differ, and each feeds its own signal on. He et al. (2015, Fig. 7) found residual responses generally "
        "*smaller* than plain layers' responses in ResNets trained for long on CIFAR-10: each block makes a "
        "modest correction to what flows past it."
    ).format(resnet=median["resnet"], plain=median["plain"])
    if below and median["resnet"] > 0.5:
        text += " " + _(
            "Here the ResNet's median is below the plain twin's, but near 1: in a net this shallow each "
            "block still makes a substantial change."
        )
    elif below:
        text += " " + _("Here the ResNet's median is below the plain twin's.")
    elif median["resnet"] > 0.5:
        text += " " + _(
            "Here the ResNet's median is not below the plain twin's, and near 1: in a net this shallow "
            "each block still makes a substantial change."
        )
    else:
        text += " " + _("Here the ResNet's median is not below the plain twin's.")
    st.markdown(text + " " + _("A cosine near 0 means F(x) adds new directions rather than scaling x up or down."))

    st.subheader(_("Where in the picture each block's branch acts"))
    st.caption(caption)
    twin = st.radio(_("Twin"), TWINS, horizontal=True, format_func=twin_label, key="residual_map_twin")
    chart(
        plots.spatial_maps_figure(
            shown,
            contribs[twin],
            title=_("{twin}: |F(x)| relative to the mean |x|, per block").format(twin=twin_label(twin)),
        )
    )
    st.caption(
        _(
            "Each map is the channel-averaged |F(x)| at the block's own resolution (32x32, 16x16, 8x8), "
            "divided by the block's average |x|: 1 means the branch is as large there as a typical identity "
            "value. Bright regions are where that block rewrites the signal most."
        )
    )

    st.subheader(_("Where the gradient flows"))
    chart(plots.gradient_split_figure(grads))
    st.caption(
        _(
            "At each ResNet block the gradient reaching its input is the sum of two parts: one passed "
            "straight back through the identity, one through the branch F. Bars show each part's share "
            "(by norm) for the cross-entropy of the predicted class. In the plain twin, 100% must go "
            "through F: there is no other way back."
        )
    )

st.header(_("2. Lesion lab: delete blocks at test time"))
n_images = st.select_slider(_("Test images"), options=[100, 200, 500, 1000], value=100, key="residual_lesion_images")
lab_key = (model_name, model_key, n_images)
# Deep twins take a while on a CPU: run them on request, then remember for every session.
run_lab = len(names) <= AUTO_LESION_MAX_BLOCKS or lab_key in finished_labs()
if not fits_shapes(resnet):
    st.info(
        _(
            "The lesion lab measures accuracy on the shapes test set, so it needs twins trained on shapes ({n} "
            "classes, 32x32 images). Your checkpoint has {m} classes."
        ).format(n=len(rv.SHAPE_CLASSES), m=resnet.fc.out_features)
    )
    run_lab = False
elif not run_lab:
    st.info(
        _(
            "The lesion lab re-tests both {n}-block twins with each block deleted; on a CPU this takes a minute or "
            "so the first time, then it is cached for everyone."
        ).format(n=len(names))
    )
    run_lab = st.button(_("Run the lesion lab"), key=f"residual_run_lab_{model_name}_{n_images}")
if run_lab:
    with bounded_work(), st.spinner(_("Deleting blocks and re-testing both twins… (cached afterwards)")):
        single, curves = lesion_lab(model_name, n_images, 3, model_key)
    finished_labs().add(lab_key)
    left, right = st.columns(2)
    with left:
        chart(plots.lesion_figure(single, names))
    with right:
        chart(
            plots.random_deletion_figure(
                curves, {t: r["baseline"] for t, r in single.items()}, chance=1 / len(rv.SHAPE_CLASSES)
            )
        )
    drops = mean_lesion_drops(single)
    c1, c2, c3 = st.columns(3)
    points = _("{value:.1f} points")
    c1.metric(_("ResNet: mean loss, one block deleted"), points.format(value=100 * drops["resnet"]))
    c2.metric(
        _("Plain twin: mean loss, one block deleted"),
        points.format(value=100 * drops["plain"]),
        help=_("Averaged over the blocks that keep their shape; the others cannot be deleted."),
    )
    ratio = drops["plain"] / drops["resnet"] if drops["resnet"] >= 0.005 else None
    c3.metric(
        _("Plain / ResNet"),
        f"{ratio:.1f}x" if ratio is not None else "n/a",
        help=_("How many times more accuracy the plain twin loses (n/a when the ResNet loses almost none)."),
    )
st.markdown(
    _(
        "A deleted ResNet block is replaced by its shortcut; a deleted plain block by the identity. Bars marked "
        "*n/a* are plain blocks that change the resolution and channel count: nothing can stand in for them. "
        "**Veit, Wilber and Belongie (2016)** found that deleting a single block of a trained ResNet-110 barely "
        "changes its error, and error grows smoothly as more blocks are removed: a ResNet behaves like an "
        "*ensemble of many shallower paths* that do not depend strongly on each other. Deleting any layer of a "
        "plain network (VGG) drops it to chance, because its only path goes through every layer. Random deletions "
        "here are drawn among the blocks that keep their shape, the same blocks for both twins; error bars show "
        "the spread over 3 draws. A shallow ResNet such as ResNet-20 (9 blocks, 512 paths) leans on each block "
        "more than ResNet-110 does, and blocks that downsample matter most, since their shortcut is not the "
        "identity either; Veit et al. saw the same. Compare the two twins' losses above to see what the skips buy."
    )
)
st.markdown(
    _(
        "Why does deleting a block cost a deep ResNet so little? Inside a block, the class evidence is split "
        "between what arrives along the skip and what the branch adds, block by block, for ResNet-20 and ResNet-56."
    )
)
st.page_link(
    "pages/inside_a_block.py", label=_("Inside a block: the evidence along the skips"), icon=":material/zoom_in:"
)

st.header(_("3. 2ⁿ paths: a ResNet unravelled"))
n_blocks = st.slider(
    _("Residual blocks n"),
    1,
    60,
    len(names),
    key=f"residual_paths_n_{model_name}",
    help=_("Defaults to the selected model's number of blocks."),
)
dist = path_length_distribution(n_blocks)
chart(plots.path_length_figure(dist))
lo, hi = dist["central_95"]
st.markdown(
    _(
        "Each of the {n} blocks is either passed through F or skipped through the identity, so there are 2^{n} = "
        "{total:,} paths from input to output. C(n, k) of them go through k blocks: a binomial distribution centred on "
        "n/2 = {mean:g}, with 95% of paths between {lo} and {hi} blocks long. Only one path uses all {n} blocks, and "
        "that path is the whole of the plain twin. Veit et al. also showed that most of a ResNet's gradient during "
        "training comes from even shorter paths."
    ).format(n=n_blocks, total=dist["total"], mean=dist["mean"], lo=lo, hi=hi)
)
