"""The Training race page's settings: the widgets, the link's table (``?depths=&steps=&batch=``), the RaceConfig."""

from __future__ import annotations

import os

import streamlit as st

from resnet_viz import race as rr
from resnet_viz.device import PRECISION_NAMES, cpu_has_native_bf16, resolve_precision
from resnet_viz.i18n import N_, _
from resnet_viz.models import twin_label
from resnet_viz.training import OPTIMIZERS, SCHEDULES, Recipe
from ui.models import device
from ui.url_state import ChoiceList, IntRange, UrlState

DEPTH_CHOICES = [8, 14, 20, 32, 44, 56, 110]
STEPS_RANGE, BATCH_RANGE = (10, 20000), (4, 1024)  # the widgets' bounds, also for settings from the URL
DATASET_LABELS = {
    "shapes-easy": N_("Bundled shapes, easy variant (offline)"),
    "shapes": N_("Bundled shapes (offline)"),
    "cifar10": N_("CIFAR-10 (downloaded once)"),
    "folder": N_("Server image folder"),
}
OPTIMIZER_NAMES = {"sgd": N_("SGD with momentum"), "adam": "Adam"}
SCHEDULE_NAMES = {"constant": N_("constant"), "step": N_("step (÷10 at 50% and 75%)"), "cosine": N_("cosine")}


def _available_datasets() -> list[str]:
    names = ["shapes-easy", "shapes", "cifar10"]
    if os.environ.get(rr.FOLDER_ENV):  # set by the server's operator, never typed by a visitor
        names.append("folder")
    return names


def race_url(base: Recipe) -> UrlState:
    """The settings a link can prepare (``?depths=20,56&steps=100&batch=16``), so a teacher can share a race."""
    return UrlState(
        "race",
        [
            ChoiceList("depths", DEPTH_CHOICES, [20, 56], keep_valid=False, allow_empty=True),
            IntRange("steps", *STEPS_RANGE, base.steps),
            IntRange("batch", *BATCH_RANGE, base.batch_size),
        ],
    )


def _precision_label(choice: str) -> str:
    if choice == "fp32":
        return _("float32 (forced)")
    if device().type == "cpu" and cpu_has_native_bf16():
        return _("Automatic: bfloat16 or float32, whichever trains faster here (measured)")
    return _("Automatic: {precision} on this machine").format(
        precision=PRECISION_NAMES[resolve_precision(device(), "auto")]
    )


def race_settings() -> tuple[rr.RaceConfig | None, str | None]:
    base = rr.quick_recipe()
    url = race_url(base)
    url.read()
    with st.expander(_("Race settings"), expanded=False):
        c1, c2, c3 = st.columns(3)
        depths = c1.multiselect(
            _("Depths"), DEPTH_CHOICES, key=url.key("depths"), help=_("6n+2 layers, as in He et al.'s CIFAR networks.")
        )
        twins = c2.multiselect(
            _("Networks"), ["resnet", "plain"], default=["resnet", "plain"], key="race_twins", format_func=twin_label
        )
        dataset = c3.selectbox(
            _("Data set"),
            _available_datasets(),
            format_func=lambda d: _(DATASET_LABELS[d]),
            key="race_data",
            help=_(
                "The easy variant: larger shapes, stronger contrast, no background texture, "
                "little noise. The quick race uses it so that a minute of training shows "
                "both halves of Fig. 6."
            ),
        )
        with st.expander(_("Advanced recipe")):
            a1, a2, a3, a4 = st.columns(4)
            steps = a1.number_input(_("Steps"), *STEPS_RANGE, step=10, key=url.key("steps"))
            batch = a2.number_input(_("Batch size"), *BATCH_RANGE, step=4, key=url.key("batch"))
            optimizer = a3.selectbox(
                _("Optimiser"),
                OPTIMIZERS,
                index=OPTIMIZERS.index(base.optimizer),
                key="race_opt",
                format_func=lambda o: _(OPTIMIZER_NAMES[o]),
            )
            default_lr = base.lr if optimizer == base.optimizer else (0.1 if optimizer == "sgd" else 1e-3)
            lr = a4.number_input(_("Learning rate"), 1e-5, 2.0, default_lr, format="%.4f", key=f"race_lr_{optimizer}")
            b1, b2, b3, b4 = st.columns(4)
            warmup = b1.number_input(_("Warm-up steps"), 0, 5000, base.warmup_steps, key="race_warmup")
            schedule = b2.selectbox(
                _("Decay"),
                SCHEDULES,
                index=SCHEDULES.index(base.schedule),
                key="race_sched",
                format_func=lambda k: _(SCHEDULE_NAMES[k]),
            )
            wd = b3.number_input(_("Weight decay"), 0.0, 0.1, base.weight_decay, format="%.5f", key="race_wd")
            seed = b4.number_input(_("Seed"), 0, 10_000, base.seed, key="race_seed")
            e1, e2, e3, _e4 = st.columns(4)
            image_size = e1.selectbox(
                _("Image size (px)"),
                rr.IMAGE_SIZES,
                key="race_size",
                index=rr.IMAGE_SIZES.index(rr.QUICK_IMAGE_SIZE),
                help=_(
                    "16 px: a quarter of the work of 32 px per image, so four times as many steps fit in the same time."
                ),
            )
            precision = e2.selectbox(
                _("Precision"),
                ["auto", "fp32"],
                format_func=_precision_label,
                key="race_precision",
                help=_(
                    "Automatic: on processors that compute bfloat16 natively (CPUs with "
                    "AVX-512 BF16 or AMX) the race first times a few steps in bfloat16 and "
                    "in float32 and trains in the faster (with AMX bfloat16 usually wins, "
                    "without it float32 can); float32 elsewhere, on GPUs too (there these "
                    "small networks wait on kernel launches, not arithmetic)."
                ),
            )
            seeds = e3.number_input(
                _("Seeds per net"),
                1,
                rr.MAX_SEEDS,
                3,
                key="race_seeds",
                help=_(
                    "Each net trains on this many seeds (its own initial weights and batch "
                    "order): seed, seed + 1, ... The charts show each net's mean over its "
                    "seeds with a band from the lowest to the highest seed."
                ),
            )
    url.write()
    if not depths or not twins:
        return None, _("Pick at least one depth and one network.")
    try:
        recipe = Recipe(
            steps=int(steps),
            batch_size=int(batch),
            optimizer=optimizer,
            lr=float(lr),
            momentum=base.momentum,
            weight_decay=float(wd),
            warmup_steps=int(warmup),
            schedule=schedule,
            seed=int(seed),
        )
        return rr.RaceConfig(
            depths=tuple(depths),
            twins=tuple(twins),
            dataset=dataset,
            recipe=recipe,
            image_size=int(image_size),
            precision=precision,
            seeds=int(seeds),
        ), None
    except ValueError as e:
        return None, str(e)
