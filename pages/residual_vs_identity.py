"""Residual vs identity: how much does F(x) change the signal, and how much does a ResNet need each block?"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np
import streamlit as st

import resnet_viz as rv
from pages import route_through_app
from pages.common import UPLOAD_SOURCE, explain_slots, session_models, source_label, twins_for, wait_message
from resnet_viz import residual_plots as plots
from resnet_viz.data import TEST_SEED, make_shapes_raw
from resnet_viz.imaging import ACCEPTED_EXTENSIONS, ImageError, image_to_tensor, load_image, resize_for_model
from resnet_viz.residual import (block_contributions, gradient_split, keeps_shape, lesion_accuracies,
                                 path_length_distribution, random_deletion_accuracies)
from resnet_viz.style import LABELS

route_through_app()

SHAPES_POOL = 200  # test images to pick a single shape from
BATCH_SIZE = 64
SOURCES = ("Shapes test image", "Batch of shapes", "Sample photo", "Upload")
PLOT_CONFIG = {"displaylogo": False}
AUTO_LESION_MAX_BLOCKS = 9  # deeper twins run the lesion lab on request


# -- cached computations: keyed by model name and input, shared by all sessions -------------------

@st.cache_data(show_spinner=False, max_entries=8)
def shapes_pool(n: int):
    images, labels, _ = rv.make_shapes(n, seed=TEST_SEED)
    raw, _, _ = make_shapes_raw(n, seed=TEST_SEED)
    return images, labels, raw


@st.cache_data(show_spinner="Probing every block…", max_entries=64)
def probe(model_name: str, input_key: str, _x, model_key: str = ""):
    """Block contributions of both twins and the ResNet's gradient split, for one input."""
    resnet, plain, _ = twins_for(model_name)
    contribs = {m.twin: block_contributions(m, _x) for m in (resnet, plain)}
    return contribs, gradient_split(resnet, _x)


@st.cache_resource
def finished_labs() -> set:
    """(model, number of images) pairs whose lesion lab is already in the cache."""
    return set()


@st.cache_data(show_spinner=False, max_entries=16)
def lesion_lab(model_name: str, n_images: int, samples: int, model_key: str = ""):
    resnet, plain, _ = twins_for(model_name)
    images, labels, _ = shapes_pool(max(n_images, SHAPES_POOL))
    images, labels = images[:n_images], labels[:n_images]
    single = {m.twin: lesion_accuracies(m, images, labels) for m in (resnet, plain)}
    n_candidates = sum(keeps_shape(b) for _, b in resnet.blocks())
    # A handful of k values keeps the first view within seconds; the curve is smooth anyway.
    ks = sorted({1, 2, 3, *range(5, n_candidates + 1, max(2, n_candidates // 6)), n_candidates})
    curves = {m.twin: random_deletion_accuracies(m, images, labels, ks=ks, samples=samples, seed=0)
              for m in (resnet, plain)}
    return single, curves


@contextmanager
def bounded_work():
    """Share the server's pool of work slots with the other pages; say so while waiting."""
    waiting = st.empty()
    with explain_slots().hold(on_wait=wait_message(waiting, "computations")):
        waiting.empty()
        yield


# -- input ----------------------------------------------------------------------------------------

def choose_input(model):
    """Widgets for the input. Returns (x, display image H x W x 3 uint8, cache key, caption) or None."""
    source = st.radio("Input", SOURCES, horizontal=True, key="residual_source")
    if source == "Shapes test image":
        images, labels, raw = shapes_pool(SHAPES_POOL)
        i = st.slider("Test image", 0, SHAPES_POOL - 1, 3, key="residual_shape_index")
        return images[i:i + 1], raw[i], f"shape:{i}", f"Test shape #{i}: a {rv.SHAPE_CLASSES[int(labels[i])]}"
    if source == "Batch of shapes":
        images, _, raw = shapes_pool(SHAPES_POOL)
        mean_image = raw[:BATCH_SIZE].mean(axis=0).astype(np.uint8)
        return (images[:BATCH_SIZE], mean_image, f"batch:{BATCH_SIZE}",
                f"{BATCH_SIZE} test shapes: numbers averaged over the batch, maps drawn over the mean image")
    if source == "Sample photo":
        samples = rv.sample_images()
        name = st.selectbox("Sample photo", list(samples), key="residual_sample")
        data = samples[name].read_bytes()
        caption = f"Sample photo '{name}'"
    else:
        upload = st.file_uploader("Upload an image", type=list(ACCEPTED_EXTENSIONS),
                                  key="residual_upload")
        if upload is None:
            st.info("Upload a PNG, JPEG, WebP, BMP or GIF image to probe it.")
            return None
        data = upload.getvalue()
        caption = f"Your image '{upload.name}'"
    try:
        img = load_image(data)
    except ImageError as exc:
        st.error(f"This image cannot be used: {exc}")
        return None
    x = image_to_tensor(img, model.preprocess)
    shown = np.asarray(resize_for_model(img, model.preprocess))
    return x, shown, "bytes:" + hashlib.sha256(data).hexdigest(), caption + " (as the model sees it)"


# -- page -----------------------------------------------------------------------------------------

st.title("Residual vs identity")
st.markdown(
    "A residual block outputs **y = F(x) + x**. How much does the learned branch **F(x)** change the signal "
    "compared with the identity **x** it is added to, and how much does a trained ResNet depend on each block? "
    "Here F(x) is the branch's output *before* the block's final ReLU, and x is the shortcut (the block's "
    "input, subsampled and zero-padded where a block halves the resolution). For the plain twin, which has no "
    "shortcut, F(x) is compared with the block's input."
)

available = rv.list_bundled()
if not available:
    st.error("No bundled twins found; run `python -m resnet_viz train-bundled`.")
    st.stop()
if session_models().twins:
    available = [*available, UPLOAD_SOURCE]
model_labels = {(source_label(n) if n == UPLOAD_SOURCE else f"Bundled {n} (depth {n.split('-')[-1]}, trained on shapes)"): n
                for n in available}
model_name = model_labels[st.selectbox("Twins", list(model_labels), key="residual_model")]
resnet, plain, info = twins_for(model_name)
model_key = session_models().cache_key(model_name)
names = [name for name, _ in resnet.blocks()]

st.header("1. F(x) next to x, block by block")
chosen = choose_input(resnet)
if chosen is not None:
    x, shown, input_key, caption = chosen
    with bounded_work():
        contribs, grads = probe(model_name, input_key, x, model_key)
    left, right = st.columns(2)
    left.plotly_chart(plots.ratio_figure(contribs), config=PLOT_CONFIG)
    right.plotly_chart(plots.cosine_figure(contribs), config=PLOT_CONFIG)
    median = {t: float(np.median([e["ratio"] for e in contribs[t]])) for t in contribs}
    st.markdown(
        f"Median ‖F(x)‖/‖x‖ over the blocks: **{median['resnet']:.2f}** for the ResNet, "
        f"**{median['plain']:.2f}** for the plain twin. The twins started from the same weights but were "
        "trained apart, so even their first blocks now differ, and each feeds its own signal on. "
        "He et al. (2015, Fig. 7) found residual responses generally *smaller* than plain layers' responses "
        "in ResNets trained for long on CIFAR-10: each block makes a modest correction to what flows past it. "
        f"Here the ResNet's median is {'below' if median['resnet'] < median['plain'] else 'not below'} the "
        "plain twin's"
        + (", but near 1: in a net this shallow each block still makes a substantial change. "
           if median["resnet"] > 0.5 else ". ")
        + "A cosine near 0 means F(x) adds new directions rather than scaling x up or down."
    )

    st.subheader("Where in the picture each block's branch acts")
    st.caption(caption)
    twin = st.radio("Twin", ("resnet", "plain"), horizontal=True, format_func=lambda t: LABELS[t],
                    key="residual_map_twin")
    st.plotly_chart(plots.spatial_maps_figure(
        shown, contribs[twin], title=f"{LABELS[twin]}: |F(x)| relative to the mean |x|, per block"),
        config=PLOT_CONFIG)
    st.caption("Each map is the channel-averaged |F(x)| at the block's own resolution (32x32, 16x16, 8x8), "
               "divided by the block's average |x|: 1 means the branch is as large there as a typical identity "
               "value. Bright regions are where that block rewrites the signal most.")

    st.subheader("Where the gradient flows")
    st.plotly_chart(plots.gradient_split_figure(grads), config=PLOT_CONFIG)
    st.caption("At each ResNet block the gradient reaching its input is the sum of two parts: one passed "
               "straight back through the identity, one through the branch F. Bars show each part's share "
               "(by norm) for the cross-entropy of the predicted class. In the plain twin, 100% must go "
               "through F: there is no other way back.")

st.header("2. Lesion lab: delete blocks at test time")
n_images = st.select_slider("Test images", options=[100, 200, 500, 1000], value=100, key="residual_lesion_images")
lab_key = (model_name, model_key, n_images)
fits_shapes = resnet.fc.out_features == len(rv.SHAPE_CLASSES) and resnet.preprocess.get("size") == 32
# Deep twins take a while on a CPU: run them on request, then remember for every session.
run_lab = len(names) <= AUTO_LESION_MAX_BLOCKS or lab_key in finished_labs()
if not fits_shapes:
    st.info("The lesion lab measures accuracy on the shapes test set, so it needs twins trained on shapes "
            f"({len(rv.SHAPE_CLASSES)} classes, 32x32 images). Your checkpoint has {resnet.fc.out_features} classes.")
    run_lab = False
elif not run_lab:
    st.info(f"The lesion lab re-tests both {len(names)}-block twins with each block deleted; on a CPU this "
            "takes a minute or so the first time, then it is cached for everyone.")
    run_lab = st.button("Run the lesion lab", key=f"residual_run_lab_{model_name}_{n_images}")
if run_lab:
    with bounded_work(), st.spinner("Deleting blocks and re-testing both twins… (cached afterwards)"):
        single, curves = lesion_lab(model_name, n_images, 3, model_key)
    finished_labs().add(lab_key)
    left, right = st.columns(2)
    left.plotly_chart(plots.lesion_figure(single, names), config=PLOT_CONFIG)
    right.plotly_chart(plots.random_deletion_figure(curves, {t: r["baseline"] for t, r in single.items()},
                                                    chance=1 / len(rv.SHAPE_CLASSES)), config=PLOT_CONFIG)
    drops = {t: r["baseline"] - float(np.mean([v for v in r["per_block"] if v is not None]))
             for t, r in single.items()}
    c1, c2, c3 = st.columns(3)
    c1.metric("ResNet: mean loss, one block deleted", f"{100 * drops['resnet']:.1f} points")
    c2.metric("Plain twin: mean loss, one block deleted", f"{100 * drops['plain']:.1f} points",
              help="Averaged over the blocks that keep their shape; the others cannot be deleted.")
    ratio = drops["plain"] / drops["resnet"] if drops["resnet"] >= 0.005 else None
    c3.metric("Plain / ResNet", f"{ratio:.1f}x" if ratio is not None else "n/a",
              help="How many times more accuracy the plain twin loses (n/a when the ResNet loses almost none).")
st.markdown(
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

st.header("3. 2ⁿ paths: a ResNet unravelled")
n_blocks = st.slider("Residual blocks n", 1, 60, len(names), key=f"residual_paths_n_{model_name}",
                     help="Defaults to the selected model's number of blocks.")
dist = path_length_distribution(n_blocks)
st.plotly_chart(plots.path_length_figure(dist), config=PLOT_CONFIG)
lo, hi = dist["central_95"]
st.markdown(
    f"Each of the {n_blocks} blocks is either passed through F or skipped through the identity, so there are "
    f"2^{n_blocks} = {dist['total']:,} paths from input to output. C(n, k) of them go through k blocks: a "
    f"binomial distribution centred on n/2 = {dist['mean']:g}, with 95% of paths between {lo} and {hi} blocks "
    f"long. Only one path uses all {n_blocks} blocks, and that path is the whole of the plain twin. Veit et al. "
    "also showed that most of a ResNet's gradient during training comes from even shorter paths."
)
