"""Shattered gradients (Balduzzi et al. 2017): why a deep plain net is hard to train even when its gradient is healthy.

The paper's 1-input nets next to the app's convolutional twins: the gradient along a line of inputs, its
autocorrelation, and the depth sweep. The view lives in the URL query string.
"""

from __future__ import annotations

import io

import numpy as np
import streamlit as st

from resnet_viz import shattered as sh
from resnet_viz.i18n import N_, Labels, _
from resnet_viz.models import TWINS, twin_label
from resnet_viz.shattered_plots import autocorrelation_figure, line_gradient_figure, sweep_figure
from ui.charts import show_chart
from ui.compute import cached_shattered_line
from ui.models import UPLOAD_SOURCE, bundled_twins, session_models
from ui.routing import route_through_app
from ui.url_state import Choice, IntRange, UrlState
from ui.work import work_slot

route_through_app()

NORM_LABELS = Labels({"batch": "BatchNorm", "none": N_("none")})
SOURCE_LABELS = Labels(
    {
        "init": N_("At initialisation (any depth)"),
        "shapes-20": N_("Trained: bundled ResNet-20 vs Plain-20"),
        "shapes-56": N_("Trained: bundled ResNet-56 vs Plain-56"),
    }
)
INIT_LABELS = Labels({"kaiming": "Kaiming", "xavier": "Xavier", "default": N_("PyTorch default")})
SWEEP_LABELS = Labels({"paper": N_("the paper's nets"), "cifar": N_("the conv twins (slow)"), "off": N_("off")})
DEPTHS = (8, 14, 20, 32, 44, 56, 110)
MAX_SEED = 2**31 - 1
PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def source_choices(view: dict) -> dict:
    choices = dict(SOURCE_LABELS.items())
    if session_models().twins is not None:
        choices[UPLOAD_SOURCE] = N_("Your checkpoint")
    return choices


# The view in the URL: ?twins=init&depth=56&init=kaiming&seed=0&paper_norm=batch&sweep=paper
URL = UrlState(
    "sg",
    [
        Choice("paper_norm", NORM_LABELS, "batch"),
        Choice("twins", source_choices, "init", private=frozenset({UPLOAD_SOURCE})),
        Choice("depth", DEPTHS, 56),
        Choice("init", INIT_LABELS, "kaiming"),
        IntRange("seed", 0, MAX_SEED, 0),
        Choice("sweep", SWEEP_LABELS, "paper"),
    ],
)

PAPER_LABELS = {"shallow": N_("1-layer net"), "plain": N_("24-layer plain net"), "resnet": N_("50-layer ResNet")}


@st.cache_data(show_spinner=False, max_entries=8)
def paper_lines(norm: str, seed: int) -> dict[str, sh.LineGradients]:
    return sh.paper_figure_nets(norm=norm, seed=seed)


@st.cache_data(show_spinner=False, max_entries=16)
def trained_twin_lines(source: str, seed: int, digest: str = "") -> dict[str, sh.LineGradients]:
    """Both trained twins (bundled, or the session's checkpoint named by ``digest``) along the seed's line."""
    resnet, plain, _info = session_models().twins if source == UPLOAD_SOURCE else bundled_twins(source)
    with work_slot():
        return sh.twins_line_gradients(resnet, plain, at_init=False, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def paper_sweep(norm: str) -> sh.ShatterSweep:
    return sh.fc_sweep(norm=norm)


def conv_lines(view: dict) -> dict[str, sh.LineGradients] | None:
    source = view["twins"]
    if source == "init":
        bar = st.progress(0.0, text=_("Conv twins: ResNet…"))
        out = {}
        for i, twin in enumerate(TWINS):
            bar.progress(
                i / len(TWINS),
                text=_("Conv twins: {twin}, forward + backward (queued if the server is busy)…").format(
                    twin=twin_label(twin, lowercase=True)
                ),
            )
            out[twin] = cached_shattered_line(view["depth"], twin, view["init"], view["seed"])
        bar.empty()
        return out
    if source == UPLOAD_SOURCE:
        store = session_models()
        resnet = store.twins[0]
        if int(resnet.preprocess.get("size", 0)) != 32 or resnet.conv1.in_channels != 3:
            st.warning(_("The line runs through a 32×32 shapes image; this checkpoint takes other inputs."))
            return None
        with st.spinner(_("Your checkpoint: both twins along the line…")):
            return trained_twin_lines(source, view["seed"], store.digest)
    with st.spinner(_("Trained twins: both along the line…")):
        return trained_twin_lines(source, view["seed"])


def cifar_sweep(view: dict) -> sh.ShatterSweep:
    depths = list(sh.CIFAR_SWEEP_DEPTHS)
    bar = st.progress(0.0, text=_("Depth sweep…"))

    def measure(depth: int, twin: str) -> float:
        done = len(TWINS) * depths.index(depth) + TWINS.index(twin)
        bar.progress(
            done / (len(TWINS) * len(depths)),
            text=_("Depth sweep: depth {depth}, {twin}…").format(depth=depth, twin=twin_label(twin, lowercase=True)),
        )
        return cached_shattered_line(depth, twin, view["init"], view["seed"]).lag1

    sweep = sh.cifar_sweep(depths, measure=measure)
    bar.empty()
    return sweep


def lines_csv(lines: dict[str, sh.LineGradients], labels: dict[str, str]) -> str:
    keys = list(lines)
    rows = np.column_stack([lines[keys[0]].t] + [lines[k].directional for k in keys])
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", header=",".join(["t"] + [f"df/dt {labels[k]}" for k in keys]), comments="")
    return buf.getvalue()


def sweep_csv(sweep: sh.ShatterSweep) -> str:
    lines = ["depth,resnet_lag1,plain_lag1"] + [
        f"{d},{r:.6f},{p:.6f}" for d, r, p in zip(sweep.depths, sweep.lag1["resnet"], sweep.lag1["plain"])
    ]
    return "\n".join(lines) + "\n"


def chart_beside_notes(fig, key: str, file_name: str):
    chart, notes = st.columns([3, 1.3])
    config = {**PLOT_CONFIG, "toImageButtonOptions": {**PLOT_CONFIG["toImageButtonOptions"], "filename": file_name}}
    show_chart(fig, where=chart, key=key, config=config)
    return notes


st.title(_("Shattered gradients"))
st.caption(
    _(
        "With BatchNorm a deep plain net's gradient has a healthy size, yet it trains worse. Balduzzi et al. "
        "(2017) looked at the gradient's *shape*: walk along a line of inputs and take the gradient of the "
        "output at every point. The whole view is in the page's URL: bookmark it or share it."
    )
)

URL.read()
c = st.columns([1.4, 2.6, 1.4, 1.2, 1.1, 1.6])
c[0].selectbox(
    _("Paper's nets: normalisation"), list(NORM_LABELS), format_func=NORM_LABELS.get, key=URL.key("paper_norm")
)
choices = source_choices({})
c[1].selectbox(_("Conv twins"), list(choices), format_func=lambda k: _(choices[k]), key=URL.key("twins"))
at_init = st.session_state.get(URL.key("twins")) == "init"
c[2].select_slider(_("Depth (at initialisation)"), DEPTHS, key=URL.key("depth"), disabled=not at_init)
c[3].selectbox(
    _("Initialisation"), list(INIT_LABELS), format_func=INIT_LABELS.get, key=URL.key("init"), disabled=not at_init
)
c[4].number_input(
    _("Seed"),
    min_value=0,
    max_value=MAX_SEED,
    step=1,
    key=URL.key("seed"),
    help=_("fixes the initial weights and the line's direction"),
)
c[5].selectbox(_("Depth sweep"), list(SWEEP_LABELS), format_func=SWEEP_LABELS.get, key=URL.key("sweep"))
view = URL.view()
URL.write(view)

# --- the paper's nets ---------------------------------------------------------------------------------------
st.header(_("The paper's nets: one input, one output"))
with st.spinner(_("The paper's nets…")):
    paper = paper_lines(view["paper_norm"], view["seed"])
paper_labels = {k: _(v) for k, v in PAPER_LABELS.items()}
norm_text = _("with BatchNorm") if view["paper_norm"] == "batch" else _("without normalisation")
with chart_beside_notes(
    line_gradient_figure(paper, paper_labels, title=_("f′(x) on 256 inputs in [−2, 2], {norm}").format(norm=norm_text)),
    "sg-paper-lines",
    "shattered-paper-gradients",
):
    st.subheader(_("What you see"))
    st.markdown(
        _(
            "Balduzzi et al.'s Fig. 1: fully connected nets of 200 ReLU units per layer at initialisation, "
            "one input x and one output f(x). Each panel is the derivative f′(x) at 256 inputs from −2 to 2. "
            "The paper found the 1-layer net's derivative smooth, the 24-layer plain net's jumping about from "
            "one input to the next like **white noise**, and the 50-layer ResNet's wandering smoothly "
            "(**brown noise**); the numbers below are this run's. A gradient that looks like noise says "
            "little about the loss at the next input, so gradient descent learns slowly, even when the "
            "gradient's size is healthy."
        )
    )
    for key in paper:
        st.metric(_("{name}: lag-1 autocorrelation").format(name=paper_labels[key]), f"{paper[key].lag1:.2f}")
with chart_beside_notes(
    autocorrelation_figure(paper, paper_labels, title=_("Autocorrelation of f′(x)")),
    "sg-paper-acf",
    "shattered-paper-autocorrelation",
):
    st.subheader(_("The summary number"))
    st.markdown(
        _(
            "How alike is the gradient at one input and at the input *k* points further on? The "
            "autocorrelation at lag *k* (mean removed, 1 at lag 0). **The summary number is the value at lag "
            "1**: near 1, the next gradient is almost the same; near 0, unrelated. White noise stays inside "
            "the grey band (±2/√256 = ±0.125)."
        )
    )
st.download_button(
    _("Download the paper nets' gradients (CSV)"),
    lines_csv(paper, paper_labels),
    file_name="shattered-paper-nets.csv",
    mime="text/csv",
    key="sg-dl-paper",
)

# --- the app's conv twins -----------------------------------------------------------------------------------
st.header(_("The app's convolutional twins"))
conv = conv_lines(view)
if conv is not None:
    twin_labels = {t: twin_label(t) for t in conv}
    if view["twins"] == "init":
        what = _("CIFAR twins, {depth} layers, {init} init, BatchNorm, at initialisation").format(
            depth=view["depth"], init=INIT_LABELS[view["init"]]
        )
    else:
        what = _(choices[view["twins"]])
    with chart_beside_notes(
        line_gradient_figure(
            conv, twin_labels, title=_("df/dt along a line through a shapes image: {what}").format(what=what)
        ),
        "sg-conv-lines",
        "shattered-conv-gradients",
    ):
        st.subheader(_("Images instead of one number"))
        st.markdown(
            _(
                "The input is a 32×32 shapes image x₀, the line is x(t) = x₀ + t·v with v a random direction "
                "(one unit of variance per pixel) and t on {n} points from −1 to 1. The output is the logit of "
                "the image's class. Drawn: the directional derivative df/dt = ∇f·v. Networks at "
                "initialisation use the BatchNorm statistics of the line; trained ones their running "
                "statistics."
            ).format(n=len(next(iter(conv.values())).t))
        )
        for twin in conv:
            st.metric(_("{twin}: lag-1 autocorrelation").format(twin=twin_labels[twin]), f"{conv[twin].lag1:.2f}")
            st.metric(
                _("{twin}: neighbours' gradient correlation").format(twin=twin_labels[twin]),
                f"{conv[twin].mean_neighbour_correlation:.2f}",
                help=_(
                    "The correlation of the full input gradients (every pixel) at neighbouring points on "
                    "the line, averaged along it."
                ),
            )
    with chart_beside_notes(
        autocorrelation_figure(conv, twin_labels, title=_("Autocorrelation of df/dt")),
        "sg-conv-acf",
        "shattered-conv-autocorrelation",
    ):
        st.subheader(_("The same contrast"))
        st.markdown(
            _(
                "Same weights, same line, the skips removed. Here the lag-1 number is {r:.2f} for the "
                "ResNet and {p:.2f} for the plain twin (white noise: within ±{band:.2f} of 0). Try depth 8 "
                "against 56 or 110 to see how each changes with depth."
            ).format(r=conv["resnet"].lag1, p=conv["plain"].lag1, band=2 / len(conv["plain"].t) ** 0.5)
        )
    st.download_button(
        _("Download the twins' gradients (CSV)"),
        lines_csv(conv, twin_labels),
        file_name="shattered-twins.csv",
        mime="text/csv",
        key="sg-dl-conv",
    )

# --- depth sweep --------------------------------------------------------------------------------------------
if view["sweep"] != "off":
    st.header(_("Depth sweep"))
    if view["sweep"] == "paper":
        with st.spinner(_("Depth sweep of the paper's nets…")):
            sweep = paper_sweep(view["paper_norm"])
        points = sh.PAPER_POINTS
    else:
        sweep = cifar_sweep(view)
        points = sh.CIFAR_POINTS
    labels = {"resnet": "ResNet", "plain": _("plain net")}
    with chart_beside_notes(
        sweep_figure(sweep, labels, title=_("Lag-1 autocorrelation against depth (log–log)"), points=points),
        "sg-sweep",
        "shattered-depth-sweep",
    ):
        st.subheader(_("How fast it shatters"))
        st.markdown(
            _(
                "The summary number at each depth, on log axes; points at or below 0 are missing (a log axis "
                "has no room for them). Dotted: the shapes the paper predicts for the correlation of gradients, "
                "∝ 2^−L for plain nets and ∝ 1/√L for ResNets with BatchNorm, drawn through the first depth. "
                "The paper's theorem is about gradients at inputs far apart, averaged over random weights; the "
                "lag-1 number at a fixed spacing is not the same quantity, so compare the kind of decay "
                "(exponential against slow), not the values."
            )
        )
        try:
            fits = {twin: sh.fit_decay(sweep.depths, sweep.lag1[twin]) for twin in TWINS}
        except ValueError:
            fits = {}
        for twin, fit in fits.items():
            st.caption(
                _("{twin}: best fit {form}; ×{rate:.3f} per layer, or L^−{exp:.2f}").format(
                    twin=labels[twin],
                    form=_("exponential") if fit.better == "exponential" else _("power law"),
                    rate=fit.rate,
                    exp=fit.exponent,
                )
            )
    st.download_button(
        _("Download the depth sweep (CSV)"),
        sweep_csv(sweep),
        file_name="shattered-sweep.csv",
        mime="text/csv",
        key="sg-dl-sweep",
    )

st.caption(
    _(
        "PNG: the camera icon above each chart. Balduzzi, Frean, Leary, Lewis, Ma, McWilliams. *The Shattered "
        "Gradients Problem: If resnets are the answer, then what is the question?* (ICML 2017)."
    )
)
