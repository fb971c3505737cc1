"""Gradient flow: the gradient norm at every layer of a ResNet and its plain twin.

The whole view lives in the URL query string, so a bookmarked or shared link
reproduces it exactly.
"""

from __future__ import annotations

import streamlit as st
import torch

from resnet_viz import gradient_flow
from resnet_viz import gradients as grad
from resnet_viz.gradients_plots import (
    count_zeros,
    depth_sweep_figure,
    format_ratio,
    forward_signal_figure,
    gradient_norm_figure,
)
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.models import TWINS, twin_label
from resnet_viz.teaching import EXPLANATIONS, GRADIENT_FLOW_DEFAULTS, PRESET_KEYS, PRESET_LABELS, PRESETS
from ui.charts import show_chart
from ui.compute import cached_twin_flow, flow_depth, flow_options
from ui.models import device, session_models
from ui.routing import route_through_app
from ui.url_state import Choice, IntRange, Preset, UrlState
from ui.work import work_slot

route_through_app()

ARCH_LABELS = Labels(
    {
        "cifar": N_("CIFAR ResNet (6n+2 layers)"),
        "resnet18": N_("ResNet-18 (torchvision)"),
        "resnet34": N_("ResNet-34 (torchvision)"),
        "resnet50": N_("ResNet-50 (torchvision)"),
    }
)
DEPTHS = (8, 14, 20, 32, 44, 56, 110, 164)
NORM_LABELS = Labels({"batch": "BatchNorm", "none": N_("none")})
ACT_LABELS = Labels({"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"})
BLOCK_LABELS = Labels({"post": N_("post-activation (2015)"), "pre": N_("pre-activation (2016)")})
INIT_LABELS = Labels({"kaiming": "Kaiming", "xavier": "Xavier", "default": N_("PyTorch default")})
BATCH_LABELS = Labels({"shapes": N_("bundled shapes"), "noise": N_("random noise")})
SWEEP_LABELS = Labels({"on": N_("on"), "off": N_("off")})

DEFAULT_VIEW = GRADIENT_FLOW_DEFAULTS
MAX_SEED = 2**31 - 1
# The whole view, in the URL: ?preset=vanishing&depth=110&seed=3 ...
URL = UrlState(
    "gf",
    [
        Preset(
            "preset",
            PRESET_LABELS,
            DEFAULT_VIEW["preset"],
            presets={name: {key: preset[key] for key in PRESET_KEYS} for name, preset in PRESETS.items()},
        ),
        Choice("arch", ARCH_LABELS, DEFAULT_VIEW["arch"]),
        Choice("depth", DEPTHS, DEFAULT_VIEW["depth"]),
        Choice("norm", NORM_LABELS, DEFAULT_VIEW["norm"]),
        Choice("act", ACT_LABELS, DEFAULT_VIEW["act"]),
        Choice("block", BLOCK_LABELS, DEFAULT_VIEW["block"]),
        Choice("init", INIT_LABELS, DEFAULT_VIEW["init"]),
        Choice("batch", BATCH_LABELS, DEFAULT_VIEW["batch"]),
        IntRange("seed", 0, MAX_SEED, DEFAULT_VIEW["seed"]),
        Choice("sweep", SWEEP_LABELS, DEFAULT_VIEW["sweep"]),
    ],
)


def _select(label: str, key: str, labels: Labels, help: str | None = None):
    return st.selectbox(
        label, list(labels), format_func=labels.get, key=URL.key(key), on_change=URL.leave_preset_if_changed, help=help
    )


def controls() -> dict:
    st.radio(
        _("Lesson"),
        list(PRESET_LABELS),
        format_func=PRESET_LABELS.get,
        key=URL.key("preset"),
        horizontal=True,
        on_change=URL.fill_from_preset,
    )
    row1 = st.columns([2.2, 1.6, 1.2, 1.2, 1.8])
    with row1[0]:
        arch = _select(
            _("Architecture"),
            "arch",
            ARCH_LABELS,
            help=_("torchvision networks use random initialisation and 224 px inputs"),
        )
    with row1[1]:
        st.select_slider(
            _("CIFAR depth"),
            DEPTHS,
            key=URL.key("depth"),
            on_change=URL.leave_preset_if_changed,
            disabled=arch != "cifar",
            help=_("6n+2 weight layers; torchvision networks have fixed depth"),
        )
    with row1[2]:
        _select(_("Normalisation"), "norm", NORM_LABELS)
    with row1[3]:
        _select(_("Activation"), "act", ACT_LABELS)
    with row1[4]:
        _select(
            _("Block"),
            "block",
            BLOCK_LABELS,
            help=_(
                "post: activation after the addition (He et al. 2015); pre: "
                "BN/activation before each convolution, addition last (He et al. 2016)"
            ),
        )
    row2 = st.columns([2.2, 1.6, 1.2, 1.2, 1.8])
    with row2[0]:
        _select(_("Initialisation"), "init", INIT_LABELS)
    with row2[1]:
        _select(
            _("Batch"),
            "batch",
            BATCH_LABELS,
            help=_("16 bundled shapes images (8 for torchvision networks) or Gaussian noise"),
        )
    with row2[2]:
        st.number_input(
            _("Seed"),
            min_value=0,
            max_value=MAX_SEED,
            step=1,
            key=URL.key("seed"),
            help=_("fixes the initial weights and the batch"),
        )
    with row2[3]:
        _select(_("Depth sweep"), "sweep", SWEEP_LABELS)
    return URL.view()


def compute_flows(view: dict, *, what: str, **changes) -> dict[str, grad.GradientFlow]:
    """Both twins' gradient flow for ``view`` (with ``changes`` to its model options), with a progress bar.

    ``what`` is an ``N_``-marked label. Each twin is cached on its own, so views already seen are instant.
    """
    bar = st.progress(0.0, text=_("{what}: ResNet…").format(what=_(what)))

    def measure(arch: str, depth: int, twin: str, **options) -> grad.GradientFlow:
        bar.progress(
            TWINS.index(twin) / len(TWINS),
            text=_("{what}: {twin}, forward + backward (queued if the server is busy)…").format(
                what=_(what), twin=twin_label(twin, lowercase=True)
            ),
        )
        return cached_twin_flow(arch, depth, twin, **options)

    flows = grad.twin_flows(view["arch"], depth=flow_depth(view), measure=measure, **{**flow_options(view), **changes})
    bar.empty()
    return flows


def compute_sweep(view: dict) -> grad.DepthSweep:
    """The depth sweep for ``view``'s settings, with a progress bar; shares the cache with single views."""
    depths = list(grad.SWEEP_DEPTHS)
    bar = st.progress(0.0, text=_("Depth sweep…"))

    def measure(arch: str, depth: int, twin: str, **options) -> grad.GradientFlow:
        done = len(TWINS) * depths.index(depth) + TWINS.index(twin)
        bar.progress(
            done / (len(TWINS) * len(depths)),
            text=_("Depth sweep: depth {depth}, {twin}…").format(depth=depth, twin=twin_label(twin, lowercase=True)),
        )
        return cached_twin_flow(arch, depth, twin, **options)

    sweep = grad.depth_sweep(depths, measure=measure, **flow_options(view))
    bar.empty()
    return sweep


def describe(view: dict) -> str:
    arch = (
        _("CIFAR, {depth} layers").format(depth=view["depth"]) if view["arch"] == "cifar" else ARCH_LABELS[view["arch"]]
    )
    norm = "BatchNorm" if view["norm"] == "batch" else _("no normalisation")
    return " · ".join(
        [
            arch,
            norm,
            ACT_LABELS[view["act"]],
            BLOCK_LABELS[view["block"]],
            _("{init} init").format(init=INIT_LABELS[view["init"]]),
            BATCH_LABELS[view["batch"]],
            _("seed {seed}").format(seed=view["seed"]),
        ]
    )


def chart_beside_notes(fig, **kwargs):
    """Draw ``fig`` in a wide column and return the narrow column beside it, for the explanation."""
    chart, notes = st.columns([3, 1.3])
    show_chart(fig, where=chart, **kwargs)
    return notes


def ratio_metrics(flows: dict[str, grad.GradientFlow]) -> None:
    for twin in TWINS:
        st.metric(_("{twin}: first/last ratio").format(twin=twin_label(twin)), format_ratio(flows[twin].ratio))


st.title(_("Gradient flow"))
st.caption(
    _(
        "How large is the loss gradient at every layer, from the output back to the input? A ResNet and its "
        "plain twin (same weights, skip connections removed), measured at initialisation with one forward and "
        "one backward pass. The whole view is in the page's URL: bookmark it or share it."
    )
)

URL.read()
view = controls()
URL.write(view)

st.markdown(_("**Current view:** {view}").format(view=describe(view)))
flows = compute_flows(view, what=N_("Gradients"))

with chart_beside_notes(gradient_norm_figure(flows)):
    st.subheader(PRESET_LABELS[view["preset"]] if view["preset"] != "custom" else _("How to read it"))
    st.markdown(_(EXPLANATIONS[view["preset"]]))
    ratio_metrics(flows)
    zeros = count_zeros(flows)
    if any(zeros.values()):
        st.caption(
            " ".join(
                _(
                    "{n} layers of the {twin} got a gradient of exactly 0 (float32 underflow); the log "
                    "scale leaves them out."
                ).format(n=n, twin=twin_label(t, lowercase=True))
                for t, n in zeros.items()
                if n
            )
        )
    if view["preset"] == "block_design":
        other = "pre" if view["block"] == "post" else "post"
        pair = {
            view["block"]: flows["resnet"],
            other: compute_flows(view, what=N_("Other block design"), block=other)["resnet"],
        }
        design_labels = {"post": _("ResNet, post-activation"), "pre": _("ResNet, pre-activation")}
        for design in ("post", "pre"):
            st.metric(design_labels[design], format_ratio(pair[design].ratio))

with chart_beside_notes(forward_signal_figure(flows)):
    st.subheader(_("Forward signal"))
    st.markdown(
        _(
            "The standard deviation of the stem's and each block's output for the same batch: signals can "
            "explode or collapse on the way *in* too. A flat line means every block passes on a signal of "
            "the same size: BatchNorm keeps a plain net's line flat by design, even where its gradient "
            "explodes. In a ResNet each addition x + F(x) piles up variance, block after block."
        )
    )

if view["sweep"] == "on":
    sweep = compute_sweep(view)
    with chart_beside_notes(depth_sweep_figure(sweep)):
        st.subheader(_("Depth sweep"))
        st.markdown(
            _(
                "The first/last ratio of CIFAR networks from 8 to 110 layers with the settings above (the "
                "dotted line is a ratio of 1: the gradient reaches the input at the size it left the output). "
                "Moving away from 1 exponentially with depth is the signature of vanishing or exploding "
                "gradients."
            )
        )
        if any(r == 0 for ratios in sweep.ratios.values() for r in ratios):
            st.caption(_("Missing points: the first layer's gradient underflowed to exactly 0 in float32."))
        st.caption(_("Results are cached: coming back to a view you have seen is instant."))
else:
    st.caption(_("Depth sweep is off (turn it on above to compare depths 8 to 110)."))


@st.cache_data(show_spinner=False, max_entries=16)
def checkpoint_flows(digest: str) -> dict[str, grad.GradientFlow]:
    """Gradient flow of the session's uploaded twins at their trained weights (BatchNorm in eval mode)."""
    resnet, plain, _info = session_models().twins
    size = int(resnet.preprocess.get("size", 32))
    if size == 32 and resnet.conv1.in_channels == 3:
        x, _labels = grad.example_batch("shapes", arch="cifar", batch_size=16, seed=0)
    else:
        x = torch.randn(8, resnet.conv1.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(device())
    with work_slot():
        flows = {}
        for model in (resnet, plain):
            with torch.no_grad():
                y = model(x).argmax(1)  # its own predictions: no labels are needed for any class set
            flows[model.twin] = gradient_flow(model, x, y, batch_stats=False)
    return flows


store = session_models()
if store.twins:
    st.header(_("Your checkpoint"))
    with st.spinner(_("Measuring your checkpoint…")):
        flows_u = checkpoint_flows(store.digest)
    with chart_beside_notes(gradient_norm_figure(flows_u), key="checkpoint-flow"):
        st.markdown(
            _(
                "**{name}** at its trained weights, BatchNorm using its running statistics, the loss taken on "
                "each twin's own predictions for a batch of shapes (or noise for other input sizes). Trained "
                "networks are not at initialisation: compare the shape of the curves, not the lessons."
            ).format(name=store.name)
        )
        ratio_metrics(flows_u)
