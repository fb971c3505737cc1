"""Gradient flow: the gradient norm at every layer of a ResNet and its plain twin.

The whole view lives in the URL query string, so a bookmarked or shared link
reproduces it exactly.
"""
from __future__ import annotations

import streamlit as st
import torch

from pages import route_through_app
from pages.common import device, explain_slots, session_models
from resnet_viz import build_twins, gradient_flow
from resnet_viz import gradients as grad
from resnet_viz.gradients_plots import (count_zeros, depth_sweep_figure, format_ratio, forward_signal_figure,
                                        gradient_norm_figure)

route_through_app()

ARCH_LABELS = {"cifar": "CIFAR ResNet (6n+2 layers)", "resnet18": "ResNet-18 (torchvision)",
               "resnet34": "ResNet-34 (torchvision)", "resnet50": "ResNet-50 (torchvision)"}
DEPTHS = (8, 14, 20, 32, 44, 56, 110, 164)
NORM_LABELS = {"batch": "BatchNorm", "none": "none"}
ACT_LABELS = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}
BLOCK_LABELS = {"post": "post-activation (2015)", "pre": "pre-activation (2016)"}
INIT_LABELS = {"kaiming": "Kaiming", "xavier": "Xavier", "default": "PyTorch default"}
BATCH_LABELS = {"shapes": "bundled shapes", "noise": "random noise"}
SWEEP_LABELS = {"on": "on", "off": "off"}

PRESETS = {
    "vanishing": dict(label="Vanishing gradients", arch="cifar", depth=56, norm="none", act="sigmoid", block="pre",
                      init="kaiming"),
    "exploding": dict(label="Exploding gradients at initialisation", arch="cifar", depth=110, norm="batch",
                      act="relu", block="post", init="kaiming"),
    "paper": dict(label="The paper's setting", arch="cifar", depth=56, norm="batch", act="relu", block="post",
                  init="kaiming"),
    "block_design": dict(label="Why block design matters", arch="cifar", depth=56, norm="none", act="sigmoid",
                         block="post", init="kaiming"),
}
PRESET_LABELS = {"custom": "Custom", **{k: p["label"] for k, p in PRESETS.items()}}
PRESET_KEYS = ("arch", "depth", "norm", "act", "block", "init")

EXPLANATIONS = {
    "custom": "Each point is the size ‖∂loss/∂W‖ of the gradient that reaches one weight layer, for one batch, "
              "at initialisation (BatchNorm uses the batch's statistics, as in training). Read from right "
              "(output) to left (input): a ratio below 1 means the gradient shrinks on its way back to the "
              "input, above 1 that it grows. Pick a preset for a guided lesson.",
    "vanishing": "Without normalisation, every sigmoid scales the backward signal by its slope, at most 0.25. "
                 "In the plain twin these factors pile up layer after layer: the gradient is astronomically small "
                 "by the time it reaches the stem (exact zeros are float32 underflow: nothing arrives at all). "
                 "In the ResNet "
                 "every block *adds* its branch to an untouched identity path, so the gradient reaches the first "
                 "layers through the shortcuts.",
    "exploding": "BatchNorm keeps every block's forward signal at a steady scale (second chart), and yet the plain "
                 "twin's gradient *grows* toward the input at initialisation, and grows faster the deeper the net "
                 "(depth sweep). Yang et al. (2019) proved this: batch-normalised plain nets have exploding "
                 "gradients at initialisation. The ResNet's identity paths keep its ratio within a small factor of 1 "
                 "at every depth.",
    "paper": "BatchNorm + ReLU, post-activation blocks, option-A shortcuts, 56 layers: He et al.'s (2015) CIFAR "
             "setting, where the 56-layer plain net trains *worse* than the 20-layer one. They remarked that this "
             "degradation is unlikely to be caused by vanishing gradients: with BatchNorm the forward signals keep a "
             "non-zero variance and the backward gradients have healthy norms. The chart agrees: nothing vanishes "
             "in the plain twin (if anything its gradient grows toward the input, as Yang et al. 2019 later "
             "explained). Degradation is an optimisation difficulty; shortcuts make deep nets easier to optimise.",
    "block_design": "In a post-activation block the sigmoid comes *after* the addition, x + F(x), so even the "
                    "identity path is squashed at every block: the ResNet's gradient vanishes almost as badly as "
                    "the plain twin's. Pre-activation blocks (He et al. 2016) end with the addition and keep the "
                    "identity path clean; the comparison below measures both designs on the same weights.",
}

DEFAULT_VIEW = dict(preset="custom", arch="cifar", depth=20, norm="batch", act="relu", block="post", init="kaiming",
                    batch="shapes", seed=0, sweep="on")
CHOICES = dict(preset=PRESET_LABELS, arch=ARCH_LABELS, norm=NORM_LABELS, act=ACT_LABELS, block=BLOCK_LABELS,
               init=INIT_LABELS, batch=BATCH_LABELS, sweep=SWEEP_LABELS)
MAX_SEED = 2**31 - 1


def parse_view(params: dict[str, str]) -> tuple[dict, list[str]]:
    """The view a query string asks for, and a note for each value that fell back to its default.

    A preset fills its settings; explicit settings in the URL win, and a view
    that no longer matches its preset becomes "custom".
    """
    view, invalid, given = dict(DEFAULT_VIEW), [], set()
    for key, raw in params.items():
        if key not in DEFAULT_VIEW:
            continue
        if key == "depth":
            ok = raw.isdigit() and int(raw) in DEPTHS
        elif key == "seed":
            ok = raw.isdigit() and int(raw) <= MAX_SEED
        else:
            ok = raw in CHOICES[key]
        if not ok:
            invalid.append((key, raw))
            continue
        view[key] = int(raw) if key in ("depth", "seed") else raw
        given.add(key)
    if view["preset"] in PRESETS:
        preset = PRESETS[view["preset"]]
        for key in PRESET_KEYS:
            if key not in given:
                view[key] = preset[key]
        if any(view[key] != preset[key] for key in PRESET_KEYS):
            view["preset"] = "custom"
    problems = []
    for key, raw in invalid:  # after the preset, so the message names the value actually used
        allowed = ", ".join(map(str, DEPTHS if key == "depth" else CHOICES.get(key, ["0 … 2³¹−1"])))
        problems.append(f"`{key}={raw}` is not valid (choose from {allowed}); using `{view[key]}`.")
    return view, problems


def _widget_key(key: str) -> str:
    return f"gf_{key}"


def _load_view_into_widgets() -> list[str]:
    """Put the URL's view (or this session's last one) into the widgets' state."""
    params = {k: st.query_params[k] for k in DEFAULT_VIEW if k in st.query_params}
    widgets_ready = all(_widget_key(k) in st.session_state for k in DEFAULT_VIEW)
    problems: list[str] = []
    if params and params != st.session_state.get("gf_written_url"):
        view, problems = parse_view(params)  # a new URL: opened, pasted or edited by hand
    elif widgets_ready:
        return []
    else:  # back on the page: restore the last view
        view = st.session_state.get("gf_view", DEFAULT_VIEW)
    for key, value in view.items():
        st.session_state[_widget_key(key)] = value
    return problems


def _apply_preset() -> None:
    preset = PRESETS.get(st.session_state[_widget_key("preset")])
    if preset:
        for key in PRESET_KEYS:
            st.session_state[_widget_key(key)] = preset[key]


def _leave_preset_if_changed() -> None:
    preset = PRESETS.get(st.session_state[_widget_key("preset")])
    if preset and any(st.session_state[_widget_key(k)] != preset[k] for k in PRESET_KEYS):
        st.session_state[_widget_key("preset")] = "custom"


def _select(label: str, key: str, help: str | None = None):
    labels = CHOICES[key]
    return st.selectbox(label, list(labels), format_func=labels.get, key=_widget_key(key),
                        on_change=_leave_preset_if_changed, help=help)


def controls() -> dict:
    st.radio("Lesson", list(PRESET_LABELS), format_func=PRESET_LABELS.get, key=_widget_key("preset"),
             horizontal=True, on_change=_apply_preset)
    row1 = st.columns([2.2, 1.6, 1.2, 1.2, 1.8])
    with row1[0]:
        arch = _select("Architecture", "arch", help="torchvision networks use random initialisation and 224 px inputs")
    with row1[1]:
        st.select_slider("CIFAR depth", DEPTHS, key=_widget_key("depth"), on_change=_leave_preset_if_changed,
                         disabled=arch != "cifar", help="6n+2 weight layers; torchvision networks have fixed depth")
    with row1[2]:
        _select("Normalisation", "norm")
    with row1[3]:
        _select("Activation", "act")
    with row1[4]:
        _select("Block", "block", help="post: activation after the addition (He et al. 2015); "
                                       "pre: BN/activation before each convolution, addition last (He et al. 2016)")
    row2 = st.columns([2.2, 1.6, 1.2, 1.2, 1.8])
    with row2[0]:
        _select("Initialisation", "init")
    with row2[1]:
        _select("Batch", "batch", help="16 bundled shapes images (8 for torchvision networks) or Gaussian noise")
    with row2[2]:
        st.number_input("Seed", min_value=0, max_value=MAX_SEED, step=1, key=_widget_key("seed"),
                        help="fixes the initial weights and the batch")
    with row2[3]:
        _select("Depth sweep", "sweep")
    return {key: st.session_state[_widget_key(key)] for key in DEFAULT_VIEW}


def _write_url(view: dict) -> None:
    written = {key: str(value) for key, value in view.items()}
    if dict(st.query_params) != written:
        st.query_params.from_dict(written)
    st.session_state["gf_written_url"] = written
    st.session_state["gf_view"] = dict(view)


def _model_options(view: dict) -> dict:
    return dict(norm=view["norm"], activation=view["act"], block=view["block"], init=view["init"],
                batch=view["batch"], seed=view["seed"])


@st.cache_data(show_spinner=False, max_entries=256)
def twin_flow(arch: str, depth: int, twin: str, norm: str, activation: str, block: str, init: str, batch: str,
              seed: int) -> grad.GradientFlow:
    """One twin's gradient flow on a freshly built model (never a shared one).

    Only a cache miss takes one of the server's work slots; cached views stay instant.
    """
    with explain_slots().hold():
        x, y = grad.example_batch(batch, arch=arch, batch_size=16 if arch == "cifar" else 8, seed=seed)
        resnet, plain = build_twins(arch, seed=seed, depth=depth, norm=norm, activation=activation, block=block,
                                    init=init, num_classes=grad.NUM_CLASSES)
        model = (resnet if twin == "resnet" else plain).to(device())
        return gradient_flow(model, x.to(device()), y.to(device()))


def compute_flows(arch: str, depth: int, options: dict, *, what: str) -> dict[str, grad.GradientFlow]:
    bar = st.progress(0.0, text=f"{what}: ResNet…")
    flows = {}
    for i, twin in enumerate(("resnet", "plain")):
        bar.progress(i / 2, text=f"{what}: {'ResNet' if twin == 'resnet' else 'plain twin'}, forward + backward "
                                    "(queued if the server is busy)…")
        flows[twin] = twin_flow(arch, depth, twin, **options)
    bar.empty()
    return flows


def compute_sweep(options: dict) -> grad.DepthSweep:
    depths = list(grad.SWEEP_DEPTHS)
    ratios: dict[str, list[float]] = {"resnet": [], "plain": []}
    bar = st.progress(0.0, text="Depth sweep…")
    for i, depth in enumerate(depths):
        for twin in ("resnet", "plain"):
            bar.progress((2 * i + (twin == "plain")) / (2 * len(depths)), text=f"Depth sweep: depth {depth}, {twin}…")
            ratios[twin].append(twin_flow("cifar", depth, twin, **options).ratio)
    bar.empty()
    return grad.DepthSweep(depths=depths, ratios=ratios)


def describe(view: dict) -> str:
    arch = f"CIFAR, {view['depth']} layers" if view["arch"] == "cifar" else ARCH_LABELS[view["arch"]]
    norm = "BatchNorm" if view["norm"] == "batch" else "no normalisation"
    return (f"{arch} · {norm} · {ACT_LABELS[view['act']]} · "
            f"{BLOCK_LABELS[view['block']]} · {INIT_LABELS[view['init']]} init · {BATCH_LABELS[view['batch']]} · "
            f"seed {view['seed']}")


def chart_beside_notes(fig, **kwargs):
    """Draw ``fig`` in a wide column and return the narrow column beside it, for the explanation."""
    chart, notes = st.columns([3, 1.3])
    chart.plotly_chart(fig, width="stretch", **kwargs)
    return notes


def ratio_metrics(flows: dict[str, grad.GradientFlow]) -> None:
    for twin in ("resnet", "plain"):
        st.metric(f"{'ResNet' if twin == 'resnet' else 'Plain twin'}: first/last ratio",
                  format_ratio(flows[twin].ratio))


st.title("Gradient flow")
st.caption("How large is the loss gradient at every layer, from the output back to the input? A ResNet and its "
           "plain twin (same weights, skip connections removed), measured at initialisation with one forward and "
           "one backward pass. The whole view is in the page's URL: bookmark it or share it.")

for problem in _load_view_into_widgets():
    st.warning(f"Ignored a setting in the URL: {problem}")
view = controls()
_write_url(view)

options = _model_options(view)
depth = view["depth"] if view["arch"] == "cifar" else 0
st.markdown(f"**Current view:** {describe(view)}")
flows = compute_flows(view["arch"], depth, options, what="Gradients")

with chart_beside_notes(gradient_norm_figure(flows)):
    st.subheader(PRESET_LABELS[view["preset"]] if view["preset"] != "custom" else "How to read it")
    st.markdown(EXPLANATIONS[view["preset"]])
    ratio_metrics(flows)
    zeros = count_zeros(flows)
    if any(zeros.values()):
        st.caption(" ".join(f"{n} layers of the {'ResNet' if t == 'resnet' else 'plain twin'} got a gradient of "
                            f"exactly 0 (float32 underflow); the log scale leaves them out." for t, n in zeros.items()
                            if n))
    if view["preset"] == "block_design":
        other = "pre" if view["block"] == "post" else "post"
        pair = {view["block"]: flows["resnet"],
                other: compute_flows(view["arch"], depth, {**options, "block": other},
                                     what="Other block design")["resnet"]}
        for design in ("post", "pre"):
            st.metric(f"ResNet, {design}-activation", format_ratio(pair[design].ratio))

with chart_beside_notes(forward_signal_figure(flows)):
    st.subheader("Forward signal")
    st.markdown("The standard deviation of the stem's and each block's output for the same batch: signals can "
                "explode or collapse on the way *in* too. A flat line means every block passes on a signal of "
                "the same size: BatchNorm keeps a plain net's line flat by design, even where its gradient "
                "explodes. In a ResNet each addition x + F(x) piles up variance, block after block.")

if view["sweep"] == "on":
    sweep = compute_sweep(options)
    with chart_beside_notes(depth_sweep_figure(sweep)):
        st.subheader("Depth sweep")
        st.markdown("The first/last ratio of CIFAR networks from 8 to 110 layers with the settings above (the "
                    "dotted line is a ratio of 1: the gradient reaches the input at the size it left the output). "
                    "Moving away from 1 exponentially with depth is the signature of vanishing or exploding "
                    "gradients.")
        if any(r == 0 for ratios in sweep.ratios.values() for r in ratios):
            st.caption("Missing points: the first layer's gradient underflowed to exactly 0 in float32.")
        st.caption("Results are cached: coming back to a view you have seen is instant.")
else:
    st.caption("Depth sweep is off (turn it on above to compare depths 8 to 110).")


@st.cache_data(show_spinner="Measuring your checkpoint…", max_entries=16)
def checkpoint_flows(digest: str) -> dict[str, grad.GradientFlow]:
    """Gradient flow of the session's uploaded twins at their trained weights (BatchNorm in eval mode)."""
    resnet, plain, _ = session_models().twins
    size = int(resnet.preprocess.get("size", 32))
    if size == 32 and resnet.conv1.in_channels == 3:
        x, _ = grad.example_batch("shapes", arch="cifar", batch_size=16, seed=0)
    else:
        x = torch.randn(8, resnet.conv1.in_channels, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(device())
    with explain_slots().hold():
        flows = {}
        for model in (resnet, plain):
            with torch.no_grad():
                y = model(x).argmax(1)  # its own predictions: no labels are needed for any class set
            flows[model.twin] = gradient_flow(model, x, y, batch_stats=False)
    return flows


store = session_models()
if store.twins:
    st.header("Your checkpoint")
    flows_u = checkpoint_flows(store.digest)
    with chart_beside_notes(gradient_norm_figure(flows_u), key="checkpoint-flow"):
        st.markdown(f"**{store.name}** at its trained weights, BatchNorm using its running statistics, the loss "
                    "taken on each twin's own predictions for a batch of shapes (or noise for other input sizes). "
                    "Trained networks are not at initialisation: compare the shape of the curves, not the lessons.")
        ratio_metrics(flows_u)
