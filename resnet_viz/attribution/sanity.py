"""The sanity check of Adebayo et al. (2018), "Sanity Checks for Saliency Maps", and its verdict.

Cascading model-parameter randomisation on a private copy: a method whose maps stay similar while the
weights are destroyed is not explaining the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..i18n import N_
from ..locks import model_lock
from ..models import TwinNet
from .core import attribute_tensor, prepare
from .methods import DEFAULT_METHOD, check_method
from .metrics import spearman, ssim


@dataclass
class Step:
    """One step of the cascading randomisation: weights randomised from the head down to ``layer``.

    The first step (``layer == "original"``) is the trained model's own map.
    ``spearman`` is the rank correlation of the absolute maps with the original,
    ``ssim`` their structural similarity (both 1 for the original).
    """

    layer: str
    map: np.ndarray
    spearman: float
    ssim: float


def granularity_for(model: TwinNet) -> str:
    """Block by block for short networks, stage by stage for deep ones (a readable strip)."""
    return "block" if sum(1 for _ in model.blocks()) <= 12 else "stage"


def randomisation_order(model: TwinNet, granularity: str = "block") -> list[tuple[str, list[nn.Module]]]:
    """Units from the output to the input: the head, each block (or each stage), the stem."""
    head = [model.fc, model.final_bn]
    stem = [model.conv1, model.bn1]
    middle: list[tuple[str, list[nn.Module]]]
    if granularity == "block":
        middle = [(name, [blk]) for name, blk in reversed(list(model.blocks()))]
    elif granularity == "stage":
        middle = [(stage, [getattr(model, stage)]) for stage in reversed(model.stage_names)]
    else:
        raise ValueError("granularity must be 'block' or 'stage'")
    return [("head", head), *middle, ("stem", stem)]


def randomise_(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    """Re-initialise weights in place: convolutions and linear layers Kaiming-normal (fan in, so signals keep
    their scale), biases zero, normalisation layers reset (weight 1, bias 0, statistics 0 and 1)."""
    with torch.no_grad():
        for root in modules:
            for m in root.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    w = torch.empty(m.weight.shape).normal_(generator=generator)  # on the CPU: one generator
                    m.weight.copy_(w * (2.0 / m.weight[0].numel()) ** 0.5)  # Kaiming normal, fan in
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.reset_parameters()


def sanity_check(
    model: TwinNet,
    image: Image.Image | torch.Tensor,
    *,
    method: str = DEFAULT_METHOD,
    target: int | None = None,
    seed: int = 0,
    granularity: str = "block",
    on_step: Callable[[int, int], None] | None = None,
    **options,
) -> list[Step]:
    """Cascading model-parameter randomisation (Adebayo et al. 2018) on a private copy of ``model``.

    Randomises the weights from the head down to the stem, one unit (``granularity``
    "block" or "stage") at a time, and maps ``target`` (default: the trained model's
    top class, kept fixed) after each step. A method whose maps stay similar while
    the weights are destroyed is not explaining the model. ``on_step(done, total)``
    reports progress. The shared model is not touched (weights, mode, hooks, ``.grad``).
    """
    check_method(method, options)
    x, out_size = prepare(model, image)
    with model_lock(model).shared():
        own = copy.deepcopy(model)
    own.eval().requires_grad_(False)
    order = randomisation_order(own, granularity)
    total = len(order) + 1
    first = attribute_tensor(own, x, out_size, method, target, options, private=True)
    steps = [Step("original", first.map, 1.0, 1.0)]
    if on_step:
        on_step(1, total)
    generator = torch.Generator().manual_seed(seed)
    for i, (name, modules) in enumerate(order):
        randomise_(modules, generator)
        att = attribute_tensor(own, x, out_size, method, first.target, options, private=True)
        steps.append(Step(name, att.map, spearman(first.map, att.map), ssim(first.map, att.map)))
        if on_step:
            on_step(i + 2, total)
    return steps


# --- the verdict ---------------------------------------------------------------------------------------------

# Rank correlation with the original map once only the head is random: at or above this the map has barely
# noticed that the class scores are now noise, and the method fails.
FAILS_IF_HEAD_SPEARMAN_AT_LEAST = 0.8
# Rank correlation once every layer is random: at or below this the map has become a different map, and the
# method passes. Between the two it partly passes: it changes but keeps part of the image's structure.
PASSES_IF_FINAL_SPEARMAN_AT_MOST = 0.25


@dataclass(frozen=True)
class Verdict:
    """What a sanity check's curve says about a method.

    ``outcome`` is "passes", "partly passes" or "fails"; ``reason`` says why in a sentence (N_-marked: show it
    with ``_()``); ``head`` and ``final`` are the rank correlations with the original map once the head, and
    once every layer, is random.
    """

    outcome: str
    reason: str
    head: float
    final: float


def sanity_verdict(steps: Sequence[Step | float]) -> Verdict | None:
    """The verdict on a sanity check's steps (or their Spearman values, original first); None before any
    step randomised anything."""
    values = [float(s.spearman if isinstance(s, Step) else s) for s in steps]
    if len(values) < 2:
        return None
    head, final = values[1], values[-1]
    if head >= FAILS_IF_HEAD_SPEARMAN_AT_LEAST:
        return Verdict("fails", N_("**fails**: the map barely notices that the head's weights are random"), head, final)
    if final <= PASSES_IF_FINAL_SPEARMAN_AT_MOST:
        return Verdict("passes", N_("**passes**: the map changes as soon as the weights are random"), head, final)
    return Verdict(
        "partly passes", N_("**partly passes**: the map changes, but keeps part of the image's structure"), head, final
    )
