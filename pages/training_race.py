"""Training race: ResNets and plain twins of several depths, trained live side by side (He et al. 2015, Fig. 6)."""

from __future__ import annotations

import datetime
import functools
import os

import streamlit as st

from resnet_viz import race as rr
from resnet_viz import race_plots
from resnet_viz.device import PRECISION_NAMES, cpu_has_native_bf16, resolve_precision
from resnet_viz.i18n import N_, _, get_language, set_language
from resnet_viz.models import twin_label
from resnet_viz.race.autotune import describe_choice
from resnet_viz.training import OPTIMIZERS, SCHEDULES, Recipe
from ui.charts import show_chart
from ui.models import device
from ui.race_dynamics import dynamics_section
from ui.routing import route_through_app
from ui.url_state import ChoiceList, IntRange, UrlState
from ui.work import session_races

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
route_through_app()
RECORDED, LIVE = "recorded", "live"  # the selector's two fixed entries; finished races are listed by name
LOADED = "loaded:"  # the selector's key of a race loaded from a file starts with this, then the file's name

st.title(_("Training race"))
st.markdown(
    _(
        "Train ResNets and their plain twins of two or more depths **side by side**. Every twin pair starts "
        "from the same weights and sees the same batches in the same order. Watch the *degradation problem*: "
        "the deeper plain net trains **worse** than the shallower one, the deeper ResNet does not."
    )
)

state = st.session_state


@st.cache_resource(show_spinner=False)
def _warm_shapes_cache() -> bool:
    """Generate the default race's shapes in the background once per server, while visitors read."""
    import threading

    threading.Thread(target=rr.load_race_data, args=("shapes",), name="warm-shapes", daemon=True).start()
    return True


_warm_shapes_cache()
state.setdefault("race_results", {})  # name -> finished race (dict)
MAX_KEPT_RACES = 8  # per session: older results are dropped so a long class cannot grow memory without bound


def _keep(name: str, result: dict) -> None:
    results = state["race_results"]
    results[name] = result
    while len(results) > MAX_KEPT_RACES:
        results.pop(next(iter(results)))


live: rr.Race | None = state.get("race_live")


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


def _settings() -> tuple[rr.RaceConfig | None, str | None]:
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


config, problem = _settings()
running = live is not None and not live.done
buttons = st.container(horizontal=True)
if buttons.button(_("Start"), type="primary", icon=":material/play_arrow:", disabled=running or config is None):
    if live is not None:
        live.stop()
    # Tracked per session: closing the tab stops the race (see SessionRaces).
    state["race_live"] = live = session_races().track(rr.Race(config, device=device()).start())
    state["race_show"] = LIVE
    running = True


def _control(action: str) -> None:
    """Stop, pause or resume the live race; a callback runs before the script, so the buttons drawn after it
    (Pause or Resume) show the new state at once."""
    race = state.get("race_live")
    if race is not None:
        getattr(race, action)()


buttons.button(_("Stop"), icon=":material/stop:", disabled=not running, on_click=_control, args=("stop",))
if running and live.paused:
    buttons.button(_("Resume"), icon=":material/play_arrow:", on_click=_control, args=("resume",))
else:
    buttons.button(_("Pause"), icon=":material/pause:", disabled=not running, on_click=_control, args=("pause",))
if problem:
    st.warning(problem)


def _store_finished(race: rr.Race) -> None:
    """Keep a finished live race in the session under a readable name (once)."""
    if race.saved_name or not race.done or race.status == "failed" or not race.runs:
        return
    state["race_count"] = state.get("race_count", 0) + 1
    status = {"finished": _("finished"), "stopped": _("stopped")}.get(race.status, race.status)
    name = _("Race {number}: {runs} ({status}, {time})").format(
        number=state["race_count"],
        runs=", ".join(dict.fromkeys(r.label for r in race.runs)),
        status=status,
        time=f"{datetime.datetime.now():%H:%M}",
    )
    _keep(name, race.to_dict())
    race.saved_name = name
    state.pop("race_live_figures", None)


def _progress(race: rr.Race) -> None:
    p = race.progress()
    if p["status"] == "queued":
        pos = p["queue_position"]
        st.info(
            _("Waiting for a free trainer: position {position} in the queue. Other classes are racing.").format(
                position=pos or 1
            ),
            icon=":material/hourglass_top:",
        )
    elif p["status"] == "preparing":
        st.info(
            _(
                "Preparing the data and the networks, and measuring which engine trains them fastest on this "
                "machine (a few seconds, once per race size)…"
            )
            + (_(" · paused") if race.paused else ""),
            icon=":material/pause:" if race.paused else ":material/hourglass_top:",
        )
    elif p["status"] == "failed":
        st.error(p["message"] or _("The race could not run."))
    else:
        eta = "" if p["eta_s"] is None else _(" · about {seconds:.0f} s left").format(seconds=p["eta_s"])
        paused = _(" · paused") if p["status"] == "paused" else ""
        text = _("Step {step} of {total} · {rate:.0f} images/s · {precision}").format(
            step=p["step"], total=p["total"], rate=p["images_per_second"], precision=PRECISION_NAMES[race.precision]
        )
        st.progress(min(1.0, p["fraction"]), text=text + eta + paused)
        if race.engine_choice is not None:
            st.caption(_("Training with the {choice}.").format(choice=describe_choice(race.engine_choice_dict())))
    diverged = [
        _("{label} (seed {seed})").format(label=r.label, seed=r.seed) for r in race.runs if r.status == "diverged"
    ]
    if diverged:
        st.warning(
            _(
                "{runs} diverged (the loss became NaN or infinite) and stopped; the others go on. "
                "Try a smaller learning rate or a warm-up."
            ).format(runs=", ".join(diverged))
        )


def _curves(figures: tuple, key: str) -> None:
    c1, c2 = st.columns(2)
    show_chart(figures[0], where=c1, key=f"{key}_loss")
    show_chart(figures[1], where=c2, key=f"{key}_error")


def _figures(result: dict) -> tuple:
    each_seed = bool(state.get("race_each_seed"))
    return (
        race_plots.curves_figure(result, "train_loss", each_seed=each_seed),
        race_plots.curves_figure(result, "train_error", each_seed=each_seed),
    )


def _live_figures(race: rr.Race) -> tuple:
    """The live curves, rebuilt only when the race has taken a step: building them holds the GIL that the
    training thread needs, and a step of four networks often takes longer than the half second between polls."""
    progress = (
        id(race),
        race.step,
        race.status,
        tuple(run.status for run in race.runs),
        bool(state.get("race_each_seed")),
    )
    cached = state.get("race_live_figures")
    if cached is None or cached[0] != progress:
        cached = state["race_live_figures"] = (progress, _figures(race.to_dict()))
    return cached[1]


@st.fragment(run_every=0.5 if running else None)
def live_view(show_curves: bool, lang: str) -> None:
    # A fragment's own reruns skip app.py, which sets the language: the full run passes its language along.
    set_language(lang)
    race: rr.Race = state["race_live"]
    _progress(race)
    if race.runs and show_curves:
        _curves(_live_figures(race), "live")
    if race.done:
        _store_finished(race)
        st.rerun()  # leave polling mode; the full page shows the finished race


choices = ([LIVE] if live is not None else []) + [RECORDED] + list(state["race_results"])[::-1]
if live is not None and live.done:
    _store_finished(live)
    choices = [RECORDED] + list(state["race_results"])[::-1]
    if state.get("race_show") == LIVE:
        state["race_show"] = live.saved_name or RECORDED
if state.get("race_show_next") in choices:
    state["race_show"] = state.pop("race_show_next")
if state.get("race_show") not in choices:
    state["race_show"] = choices[0]
CHOICE_NAMES = {LIVE: N_("Live race"), RECORDED: N_("Recorded race (shipped with the app)")}


def _choice_label(choice: str) -> str:
    if choice in CHOICE_NAMES:
        return _(CHOICE_NAMES[choice])
    if choice.startswith(LOADED):
        return _("Loaded: {name}").format(name=choice[len(LOADED) :])
    return choice


shown = st.selectbox(_("Show"), choices, key="race_show", label_visibility="collapsed", format_func=_choice_label)


def _twin_downloads(race: rr.Race) -> None:
    """The finished live race's trained twins, one checkpoint per depth, for the other pages (sidebar upload)."""
    pairs = rr.race_pairs(race)
    if not pairs:
        return
    st.markdown(
        _(
            "**This race's trained twins** (seed {seed}): download a depth's pair, then upload it in the "
            "sidebar under *Your own model* to see its curvature and loss landscape, its shattered gradients, "
            "its explanations and its residual branches."
        ).format(seed=race.runs[0].seed)
    )
    cols = st.columns(max(len(pairs), 3))
    for col, depth in zip(cols, pairs):
        col.download_button(
            _("Depth {depth} (.safetensors)").format(depth=depth),
            functools.partial(rr.race_twins_bytes, race, depth),
            file_name=f"race-{depth}.safetensors",
            mime="application/octet-stream",
            icon=":material/download:",
            key=f"race_twins_{depth}",
            on_click="ignore",
        )


def _recipe_text(result: dict) -> str:
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


def _checks(result: dict) -> None:
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


chart_col, text_col = st.columns([3, 1])
result: dict | None = None
with chart_col:
    if running:  # poll while training, even when another race is on show, to notice the end
        live_view(shown == LIVE, get_language())
    if not (shown == LIVE and running):
        if shown == RECORDED:
            result = rr.recorded_race()
            if result is None:
                st.info(_("No recorded race ships with this installation: press **Start** to race live."))
            else:
                st.caption(
                    _(
                        "Recorded with `python -m resnet_viz race` on {device} in {seconds:.0f} s: {data}. "
                        "Press **Start** to race live."
                    ).format(
                        device=result.get("device", "CPU"),
                        seconds=result.get("elapsed_s", 0),
                        data=rr.describe_dataset(result),
                    )
                )
        else:
            result = state["race_results"].get(shown)
        if result:
            if _recipe_text(result):
                st.caption(_("Recipe: {recipe}.").format(recipe=_recipe_text(result)))
            _curves(_figures(result), "shown")
            st.dataframe(
                [{k: v for k, v in row.items() if k not in ("arch",)} for row in rr.seed_summary(result)],
                hide_index=True,
                column_config={
                    "run": st.column_config.TextColumn(_("run")),
                    "depth": st.column_config.NumberColumn(_("depth")),
                    "seeds": st.column_config.NumberColumn(_("seeds")),
                    "finished": st.column_config.NumberColumn(_("finished")),
                    "final_train_loss": st.column_config.NumberColumn(_("final training loss (mean)"), format="%.3f"),
                    "min_train_loss": st.column_config.NumberColumn(_("lowest seed"), format="%.3f"),
                    "max_train_loss": st.column_config.NumberColumn(_("highest seed"), format="%.3f"),
                    "test_error": st.column_config.NumberColumn(_("test error (mean)"), format="percent"),
                },
            )

with text_col:
    st.markdown(_("**What to look for**"))
    st.markdown(
        _(
            "- Same colour = same depth. **Solid** = ResNet, **dashed** = plain twin.\n"
            "- The **deeper plain net** (dashed, more layers) ends **higher** than the shallower plain net: "
            "more layers, yet it fits the *training* data worse. That is not overfitting, it is an "
            "optimisation problem: the *degradation problem*. In the quick race plain-56 learns slowly: it "
            "leaves chance level (ln 8 = 2.08) only in the last part of the race, while plain-20 learns the "
            "shapes.\n"
            "- The **deeper ResNet** (solid) does not suffer from it: it ends at or below ResNet-20. With "
            "skip connections, extra layers can start close to the identity and only add what helps."
        )
    )
    st.checkbox(
        _("Show each seed's curve"),
        key="race_each_seed",
        help=_(
            "Each net's line is the mean over its seeds and the band spans the lowest to the highest "
            "seed; this adds every seed's own curve, thin."
        ),
    )
    if result:
        _checks(result)
    st.markdown(_("**In the paper (CIFAR-10 test error)**"))
    st.dataframe(
        [{_("network"): f"ResNet-{d}", _("test error"): f"{e:.2f} %"} for d, e in rr.PAPER_CIFAR10_TEST_ERROR.items()],
        hide_index=True,
    )
    st.caption(
        _(
            "Plain nets got *worse* with depth: plain-56 trained and tested worse than plain-20 "
            "(He et al. 2015, Fig. 6). Our quick race is far shorter and runs on simple shapes (an easy variant "
            "of the bundled data, at 16x16 pixels), so the numbers differ; the ordering is the point."
        )
    )

dynamics_section(live if shown == LIVE else result)

if result and not (shown == LIVE and running):
    depths = sorted({run["depth"] for run in result["runs"]})
    with st.expander(_("Replay: gradient norms and residual ratios during training"), expanded=False):
        r1, r0, r2 = st.columns([1, 1, 3])
        depth = r1.selectbox(_("Depth"), depths, key="replay_depth")
        seed = r0.selectbox(_("Seed"), rr.race_seeds(result), key="replay_seed")
        steps = race_plots.snapshot_steps(result, depth, seed)
        if not steps:
            st.info(_("This race has no snapshots for that depth."))
        else:
            step = r2.select_slider(_("Training step"), steps, value=steps[-1], key=f"replay_step_{shown}_{depth}")
            g, r = st.columns(2)
            show_chart(race_plots.gradient_snapshot_figure(result, depth, step, seed), where=g, key="replay_grad")
            show_chart(race_plots.ratio_snapshot_figure(result, depth, step, seed), where=r, key="replay_ratio")
            st.caption(
                _(
                    "Left: how large the gradient is at each layer, from the input (left) to the output "
                    "(right). Right: how much each block's branch F(x) changes its input x. Slide through "
                    "training to see both evolve for the two twins."
                )
            )

    d1, d2, _d3 = st.columns([1, 1, 3])
    d1.download_button(
        _("Download CSV"), rr.race_to_csv(result), file_name="race.csv", mime="text/csv", icon=":material/download:"
    )
    d2.download_button(
        _("Download JSON"),
        rr.race_to_json(result),
        file_name="race.json",
        mime="application/json",
        icon=":material/download:",
    )
    if live is not None and live.done and shown == live.saved_name:
        _twin_downloads(live)

with st.expander(_("Load a race file (JSON)")):
    upload = st.file_uploader(
        _("A race saved from this page or made with `python -m resnet_viz race`"), type=["json"], key="race_upload"
    )
    if upload is not None:
        try:
            loaded = rr.load_race(upload.getvalue())
        except rr.RaceFileError as e:
            st.error(_("Could not load {name}: {error}").format(name=upload.name, error=e))
        else:
            name = LOADED + upload.name  # a key in any language; _choice_label words it
            if name not in state["race_results"]:
                _keep(name, loaded)
                state["race_show_next"] = name  # the selector exists already: switch on the next run
                st.rerun()
            st.success(_("Loaded {name}; pick it above under *Show*.").format(name=upload.name))
