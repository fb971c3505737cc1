"""Inside a block: a block's feature maps for both twins, the channels' favourite test images, and the class
evidence that travels along the skips."""

from __future__ import annotations

import io

import numpy as np
import streamlit as st
import torch
from PIL import Image

import resnet_viz as rv
from resnet_viz import inside_plots as plots
from resnet_viz.data import shape_class_name
from resnet_viz.i18n import N_, _
from resnet_viz.inside import block_channels
from resnet_viz.models import TWINS, twin_label
from ui.charts import show_chart
from ui.compute import SHAPES_POOL, shapes_pool
from ui.image_input import INPUT_KINDS, fits_shapes, pick_image
from ui.inside import (
    EVIDENCE_IMAGES,
    EXAMPLES_POOL,
    cached_block_maps,
    cached_evidence,
    cached_examples,
    class_name,
    depth_shares,
)
from ui.models import UPLOAD_SOURCE, session_models, source_label, twins_for
from ui.presenter import presenting
from ui.routing import route_through_app
from ui.url_state import Choice, IntRange, UrlState
from ui.widgets import keep_values
from ui.work import wait_message, work_slot

route_through_app()
EXAMPLES_SHOWN = 8  # top test images per channel
THUMB = 96  # pixels a 32x32 test image is shown at


def sources(view: dict | None = None) -> list[str]:
    bundled = rv.list_bundled()
    return [*bundled, UPLOAD_SOURCE] if session_models().twins else bundled


def model_label(name: str) -> str:
    if name == UPLOAD_SOURCE:
        return source_label(name)
    return _("Bundled {name} (depth {depth}, trained on shapes)").format(name=name, depth=name.split("-")[-1])


def block_names(view: dict) -> list[str] | None:
    if view.get("model") is None:
        return None
    return [name for name, _b in twins_for(view["model"])[0].blocks()]


def default_block(names: list[str]) -> str:
    return "layer1.1" if "layer1.1" in names else names[0]


def channel_choices(view: dict) -> list[int] | None:
    if view.get("model") is None or view.get("block") is None:
        return None
    return list(range(block_channels(twins_for(view["model"])[0], view["block"])))


# The view in the URL: ?model=shapes-56&input=shape&image=3&block=layer2.1&twin=plain&channel=5. An upload (image or
# checkpoint) never is.
URL = UrlState(
    "inside",
    [
        Choice("model", sources, private=frozenset({UPLOAD_SOURCE})),
        Choice("input", INPUT_KINDS, "shape"),
        IntRange("image", 0, SHAPES_POOL - 1, 3),
        Choice("block", block_names, default_block),
        Choice("twin", TWINS, "resnet"),
        Choice("channel", channel_choices, 0),
    ],
)


def chart(fig, **kwargs) -> None:
    show_chart(fig, **kwargs)


def thumbnails(raw: np.ndarray, indices) -> list[Image.Image]:
    return [Image.fromarray(raw[int(i)]).resize((THUMB, THUMB), Image.Resampling.NEAREST) for i in indices]


def maps_file(maps: dict) -> bytes:
    """Both twins' block maps as a torch file: {twin: {input, shortcut, branch, sum, output}}."""
    buffer = io.BytesIO()
    torch.save(
        {
            twin: {k: getattr(m, k) for k in ("input", "shortcut", "branch", "sum", "output")} | {"block": m.block}
            for twin, m in maps.items()
        },
        buffer,
    )
    return buffer.getvalue()


def depth_section() -> None:
    """The identity share of evidence per block for the bundled ResNet-20 and ResNet-56, in plain words."""
    st.subheader(_("Across depths: how much of the evidence the skips carry"))
    with work_slot(on_wait=wait_message(st.empty(), N_("computations"))), st.spinner(_("Splitting the evidence…")):
        shares = depth_shares(EVIDENCE_IMAGES)
    if not shares:
        return
    chart(plots.identity_share_figure(shares))
    medians = {label: split.overall_median_share() for label, split in shares.items()}
    words = [
        _("{net}: the median block sends **{share:.0%}** of the evidence's size along its skip").format(
            net=label, share=share
        )
        for label, share in medians.items()
    ]
    text = _("Over {n} shapes test images (each for its predicted class): {parts}.").format(
        n=EVIDENCE_IMAGES, parts="; ".join(words)
    )
    for label, split in shares.items():
        branchy = [name for name, v in split.median_identity_share().items() if v < 0.5]
        if branchy:
            text += " " + _(
                "In {net}, the branch carries more than the skip in {n} of {total} blocks: {blocks}."
            ).format(net=label, n=len(branchy), total=len(split.blocks), blocks=", ".join(branchy))
    st.markdown(text)
    st.markdown(
        _(
            "When most of a block's evidence arrives along its skip, the rest of the network barely depends on what "
            "that block's branch adds, so deleting the block costs little: this is why a deep ResNet behaves like "
            "an *ensemble of shallow paths* (Veit et al. 2016). Where the branch carries most of it, as in the last "
            "blocks of a shallow ResNet, deleting the block hurts. The plain twin has no skip: all of its evidence "
            "goes through every branch. The lesion lab measures what deleting each block costs."
        )
    )
    st.page_link(
        "pages/residual_vs_identity.py",
        label=_("Residual vs identity: the lesion lab"),
        icon=":material/add_circle:",
    )
    csv = "".join(
        split.to_csv() if i == 0 else split.to_csv().split("\n", 1)[1] for i, split in enumerate(shares.values())
    )
    st.download_button(
        _("Download the split for the {n} test images (CSV)").format(n=EVIDENCE_IMAGES),
        csv,
        file_name="evidence-split-depths.csv",
        mime="text/csv",
        key="inside_download_depths",
    )


# -- page -----------------------------------------------------------------------------------------

st.title(_("Inside a block"))
st.markdown(
    _(
        "A residual block adds its branch to what arrives along the skip: **z = s(x) + F(x)**, then **y = ReLU(z)** "
        "(s(x) is the input x itself, or x subsampled and zero-padded where the block halves the resolution). Here "
        "are the block's channels for one image, next to the plain twin's, which computes **y = ReLU(F(x))**; the "
        "test images that excite a channel most; and how much of the class evidence travels along the skips."
    )
)
available = sources()
if not available:
    st.error(_("No bundled twins found; run `python -m resnet_viz train-bundled`."))
    st.stop()
URL.read()
URL.write()  # now, from the widgets' state: the page may stop before it draws them all
keep_values(URL.key("block"), URL.key("twin"), URL.key("channel"), "inside_photo")

model_name = st.selectbox(_("Twins"), available, format_func=model_label, key=URL.key("model"))
resnet, plain, info = twins_for(model_name)
model_key = session_models().cache_key(model_name)
names = [name for name, _b in resnet.blocks()]
left, right = st.columns([2, 1])
with left:
    kind = st.radio(_("Input"), list(INPUT_KINDS), format_func=INPUT_KINDS.get, horizontal=True, key=URL.key("input"))
    picked = pick_image(resnet, kind, prefix="inside")
with right:
    block = st.selectbox(
        _("Block"),
        names,
        key=URL.key("block"),
        help=_("Blocks are named by stage and position: layer2.0 is the first block of stage 2."),
    )
if picked is None:
    depth_section()
    st.stop()

with right:
    st.image(
        Image.fromarray(picked.shown).resize((160, 160), Image.Resampling.NEAREST),
        caption=picked.caption,
        alt=picked.caption,
    )

status = st.empty()
try:
    with work_slot(on_wait=wait_message(status, N_("computations"))), st.spinner(_("Opening the block…")):
        maps = cached_block_maps(model_name, model_key, picked.key, picked.x, block)
        evidence = cached_evidence(model_name, model_key, picked.key, picked.x)
except RuntimeError as exc:  # a visitor's checkpoint that expects other inputs (channels, sizes)
    st.error(_("These twins cannot take this image: {reason}").format(reason=str(exc).splitlines()[0][:200]))
    depth_section()
    st.stop()
status.empty()
guesses = {
    t: _("{twin} answers '{label}'").format(twin=twin_label(t), label=class_name(resnet, int(evidence[t].targets[0])))
    for t in TWINS
}
truth = ""
if picked.label is not None:
    truth = " " + _("(true class: {label})").format(label=shape_class_name(picked.label))
st.markdown("; ".join(guesses.values()) + truth)

st.header(_("1. The block's channels"))
shown = 8 if presenting() else 16
downsamples = maps["resnet"].input.shape[-1] != maps["resnet"].output.shape[-1]
st.markdown(
    _(
        "Each tile is one channel of block **{block}** ({cin} channels in, {cout} out, {h}x{w}), the {n} with the "
        "most energy (mean square) first. Blue is negative, red positive for F(x), which has both signs; x and y "
        "come out of a ReLU and are never negative."
    ).format(
        block=block,
        cin=maps["resnet"].input.shape[1],
        cout=maps["resnet"].output.shape[1],
        h=maps["resnet"].output.shape[-2],
        w=maps["resnet"].output.shape[-1],
        n=shown,
    )
    + (
        " " + _("This block halves the resolution: its skip subsamples x and pads it with zero channels.")
        if downsamples
        else ""
    )
)
columns = st.columns(2)
for column, twin in zip(columns, TWINS):
    m = maps[twin]
    with column:
        st.subheader(twin_label(twin))
        for tensor, what in (
            (m.input, N_("x, the block's input")),
            (m.branch, N_("F(x), the branch (before the ReLU)")),
            (m.output, N_("y, the block's output")),
        ):
            title = _("{twin}, {block}: {what}").format(twin=twin_label(twin), block=block, what=_(what))
            order = plots.channels_by_energy(tensor)[:shown]
            fig = plots.channel_grid_figure(tensor, title=title, channels=order)
            chart(fig, alt=plots.channel_grid_text(tensor, order, title=title), key=f"inside_grid_{twin}_{what[:2]}")
energy = {t: float(maps[t].output.pow(2).mean()) for t in TWINS}
change = {t: float((maps[t].output - maps[t].input).norm() / maps[t].input.norm().clamp_min(1e-12)) for t in TWINS}
if not downsamples:
    st.markdown(
        _(
            "How much the block changes its input, ‖y − x‖ / ‖x‖: **{resnet:.2f}** for the ResNet, **{plain:.2f}** "
            "for the plain twin. A ResNet block's output starts from x and adds F(x) to it; a plain block must "
            "compute all of y itself."
        ).format(resnet=change["resnet"], plain=change["plain"])
    )
st.download_button(
    _("Download both twins' maps of {block} (.pt)").format(block=block),
    maps_file(maps),
    file_name=f"inside-{model_name}-{block}.pt",
    mime="application/octet-stream",
    key="inside_download_maps",
)

st.header(_("2. Which test images excite a channel most"))
if not fits_shapes(resnet):
    st.info(
        _(
            "Dataset examples come from the shapes test set, so they need twins trained on shapes ({n} classes, "
            "32x32 images)."
        ).format(n=len(rv.SHAPE_CLASSES))
    )
else:
    c1, c2 = st.columns(2)
    twin = c1.radio(_("Twin"), TWINS, format_func=twin_label, horizontal=True, key=URL.key("twin"))
    strongest = plots.channels_by_energy(maps[twin].output)
    channel = c2.selectbox(
        _("Channel of y (strongest on this image first)"),
        strongest,
        format_func=lambda c: f"#{c}",
        key=URL.key("channel"),
    )
    with (
        work_slot(on_wait=wait_message(status, N_("computations"))),
        st.spinner(
            _("Ranking the {n} test images for every channel… (once per twin and block, then cached)").format(
                n=EXAMPLES_POOL
            )
        ),
    ):
        examples = cached_examples(model_name, model_key, twin, block)
    status.empty()
    indices, values = examples.top(block, channel, EXAMPLES_SHOWN)
    _images, labels, raw = shapes_pool(EXAMPLES_POOL)
    captions = [
        _("{label}: {value:.2f}").format(label=shape_class_name(int(labels[i])), value=float(v))
        for i, v in zip(indices, values)
    ]
    alts = [
        _("Test image #{i}, a {label}: mean activation {value:.2f}").format(
            i=int(i), label=shape_class_name(int(labels[i])), value=float(v)
        )
        for i, v in zip(indices, values)
    ]
    st.image(thumbnails(raw, indices), caption=captions, alt=alts)
    here = float(maps[twin].output[0, channel].mean())
    rank = int((examples.activations[block][:, channel] > here).sum()) + 1
    st.markdown(
        _(
            "The {k} of {n} shapes test images with the highest mean activation of channel #{c} of {block}'s "
            "output ({twin}), with their class and that activation. On your image the channel's mean activation is "
            "**{here:.2f}**, which would rank {rank} of {n1}."
        ).format(
            k=EXAMPLES_SHOWN,
            n=EXAMPLES_POOL,
            c=channel,
            block=block,
            twin=twin_label(twin, lowercase=True),
            here=here,
            rank=rank,
            n1=EXAMPLES_POOL + 1,
        )
    )

st.header(_("3. Where the class evidence travels"))
st.markdown(
    _(
        "At a block's sum z = s(x) + F(x), the gradient g of the predicted class's score says how the rest of the "
        "network reads z. The first-order evidence g · z splits exactly into **g · s(x)**, carried along the skip, "
        "and **g · F(x)**, added by the branch. This is a linear view, taken around this image: it says which path "
        "the evidence the rest of the network reads arrives by, not what the score would be without a path."
    )
)
split = evidence["resnet"]
row = split.blocks[block]
share = float(row.identity_share[0])
chart(plots.evidence_figure(split))
st.markdown(
    _(
        "On this image, at {block}, the skip carries **{identity:.3g}** and the branch **{branch:.3g}**: the skip's "
        "share of the evidence's size is **{share:.0%}**. Over all {n} blocks the ResNet's median share is "
        "**{median:.0%}**. The plain twin's blocks have no skip: their share is 0."
    ).format(
        block=block,
        identity=float(row.identity[0]),
        branch=float(row.branch[0]),
        share=share,
        n=len(split.blocks),
        median=split.overall_median_share(),
    )
)
st.download_button(
    _("Download the evidence split for this image (CSV)"),
    evidence["resnet"].to_csv() + evidence["plain"].to_csv().split("\n", 1)[1],
    file_name=f"evidence-split-{model_name}.csv",
    mime="text/csv",
    key="inside_download_split",
)
depth_section()
