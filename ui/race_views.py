"""What the Training race page writes about a race: its recipe in one line, He et al.'s Fig. 6 checks, its twins'
downloads, how long things take."""

from __future__ import annotations

import streamlit as st

from resnet_viz import race as rr
from resnet_viz.device import PRECISION_NAMES
from resnet_viz.i18n import N_, _
from ui.race_settings import OPTIMIZER_NAMES, SCHEDULE_NAMES


def recipe_text(result: dict) -> str:
    """The recipe in one line: optimiser, learning rate, steps and batch, precision."""
    recipe = result.get("recipe") or {}
    if not recipe.get("steps"):
        return ""
    precision = PRECISION_NAMES.get(recipe.get("precision"), _("precision not recorded"))
    return _(
        "{optimizer}, learning rate {lr:g}, {warmup} warm-up steps, {schedule} decay, weight decay {wd:g}, "
        "{steps} steps of {batch} images, {precision}"
    ).format(
        optimizer=_(OPTIMIZER_NAMES.get(recipe.get("optimizer"), "?")),
        lr=recipe.get("lr", 0),
        warmup=recipe.get("warmup_steps", 0),
        schedule=_(SCHEDULE_NAMES.get(recipe.get("schedule"), "?")),
        wd=recipe.get("weight_decay", 0),
        steps=recipe["steps"],
        batch=recipe.get("batch_size", "?"),
        precision=precision,
    )


CHECK_TEXT = {
    "plain_trained": N_("Plain-{depth} left chance level (it ends at {plain:.2f}; guessing gives {chance:.2f})."),
    "plain_degrades": N_(
        "Plain-{depth} ends above plain-{shallow_depth} ({deep:.2f} vs {shallow:.2f}): the degradation problem."
    ),
    "resnet_deeper_no_worse": N_(
        "ResNet-{depth} ends at or below ResNet-{shallow_depth} ({deep:.2f} vs {shallow:.2f})."
    ),
    "resnets_below_plain": N_("At every depth the ResNet ends below its plain twin."),
}
CHECK_FAILED = {
    "plain_trained": N_("Plain-{depth} stayed at chance level ({plain:.2f}; guessing gives {chance:.2f})."),
    "plain_degrades": N_("Plain-{depth} did not end above plain-{shallow_depth} ({deep:.2f} vs {shallow:.2f})."),
    "resnet_deeper_no_worse": N_("ResNet-{depth} ended above ResNet-{shallow_depth} ({deep:.2f} vs {shallow:.2f})."),
    "resnets_below_plain": N_("Not every ResNet ended below its plain twin."),
}


def show_checks(result: dict) -> None:
    checks = rr.fig6_checks(result)
    if not checks:
        return
    lines = []
    for check in checks:
        values = check["values"] if check["check"] != "resnets_below_plain" else {}
        text = _(CHECK_TEXT[check["check"]] if check["holds"] else CHECK_FAILED[check["check"]]).format(**values)
        if check["seeds"] > 1:
            text += " " + _("({agree} of {seeds} seeds show it on their own.)").format(
                agree=check["seeds_agree"], seeds=check["seeds"]
            )
        mark = (
            ":green[:material/check_circle:]" if check["holds"] else ":red[:material/cancel:]"
        )  # no emoji font needed
        lines.append(f"- {mark} {text}")
    seeds = rr.race_seeds(result)
    if len(seeds) > 1:
        head = _(
            "**In this race** (final training loss, mean of the last 10% of steps, averaged over seeds {seeds})"
        ).format(seeds=", ".join(map(str, seeds)))
    else:
        head = _("**In this race** (final training loss, mean of the last 10% of steps)")
    st.markdown(head + "\n" + "\n".join(lines))
