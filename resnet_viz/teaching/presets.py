"""Gradient flow's presets: the views a preset opens, and what to say about each one.

The Gradient flow page and the Lesson both read these. Texts are marked with ``N_`` and translated where they are
shown (``_(text)``), so the current language applies.
"""

from __future__ import annotations

from ..i18n import N_, Labels

PRESETS = {
    "vanishing": dict(
        label=N_("Vanishing gradients"), arch="cifar", depth=56, norm="none", act="sigmoid", block="pre", init="kaiming"
    ),
    "exploding": dict(
        label=N_("Exploding gradients at initialisation"),
        arch="cifar",
        depth=110,
        norm="batch",
        act="relu",
        block="post",
        init="kaiming",
    ),
    "paper": dict(
        label=N_("The paper's setting"), arch="cifar", depth=56, norm="batch", act="relu", block="post", init="kaiming"
    ),
    "block_design": dict(
        label=N_("Why block design matters"),
        arch="cifar",
        depth=56,
        norm="none",
        act="sigmoid",
        block="post",
        init="kaiming",
    ),
}
PRESET_LABELS = Labels({"custom": N_("Custom"), **{k: p["label"] for k, p in PRESETS.items()}})
PRESET_KEYS = ("arch", "depth", "norm", "act", "block", "init")
# The rest of a Gradient flow view; a preset fills PRESET_KEYS.
GRADIENT_FLOW_DEFAULTS = dict(
    preset="custom",
    arch="cifar",
    depth=20,
    norm="batch",
    act="relu",
    block="post",
    init="kaiming",
    batch="shapes",
    seed=0,
    sweep="on",
)


def preset_view(preset: str, **overrides) -> dict:
    """The full Gradient flow view of a preset (what its URL holds)."""
    view = dict(GRADIENT_FLOW_DEFAULTS, preset=preset)
    view.update({k: PRESETS[preset][k] for k in PRESET_KEYS})
    view.update(overrides)
    return view


EXPLANATIONS = {
    "custom": N_(
        "Each point is the size ‖∂loss/∂W‖ of the gradient that reaches one weight layer, for one batch, "
        "at initialisation (BatchNorm uses the batch's statistics, as in training). Read from right "
        "(output) to left (input): a ratio below 1 means the gradient shrinks on its way back to the "
        "input, above 1 that it grows. Pick a preset for a guided lesson."
    ),
    "vanishing": N_(
        "Without normalisation, every sigmoid scales the backward signal by its slope, at most 0.25. "
        "In the plain twin these factors pile up layer after layer: the gradient is astronomically small "
        "by the time it reaches the stem (exact zeros are float32 underflow: nothing arrives at all). "
        "In the ResNet every block *adds* its branch to an untouched identity path, so the gradient "
        "reaches the first layers through the shortcuts."
    ),
    "exploding": N_(
        "BatchNorm keeps every block's forward signal at a steady scale (second chart), and yet the "
        "plain twin's gradient *grows* toward the input at initialisation, and grows faster the deeper "
        "the net (depth sweep). Yang et al. (2019) proved this: batch-normalised plain nets have "
        "exploding gradients at initialisation. The ResNet's identity paths keep its ratio within a "
        "small factor of 1 at every depth."
    ),
    "paper": N_(
        "BatchNorm + ReLU, post-activation blocks, option-A shortcuts, 56 layers: He et al.'s (2015) CIFAR "
        "setting, where the 56-layer plain net trains *worse* than the 20-layer one. They remarked that this "
        "degradation is unlikely to be caused by vanishing gradients: with BatchNorm the forward signals "
        "keep a non-zero variance and the backward gradients have healthy norms. The chart agrees: nothing "
        "vanishes in the plain twin (if anything its gradient grows toward the input, as Yang et al. 2019 "
        "later explained). Degradation is an optimisation difficulty; shortcuts make deep nets easier to "
        "optimise."
    ),
    "block_design": N_(
        "In a post-activation block the sigmoid comes *after* the addition, x + F(x), so even the "
        "identity path is squashed at every block: the ResNet's gradient vanishes almost as badly as "
        "the plain twin's. Pre-activation blocks (He et al. 2016) end with the addition and keep the "
        "identity path clean; the comparison below measures both designs on the same weights."
    ),
}
