"""Training race: ResNets and plain twins of several depths, trained live side by side (He et al. 2015, Fig. 6)."""
from __future__ import annotations

import datetime
import os

import streamlit as st

from pages import route_through_app
from pages.common import device, session_races
from resnet_viz import race as rr
from resnet_viz import race_plots
from resnet_viz.training import OPTIMIZERS, SCHEDULES, Recipe

DEPTH_CHOICES = [8, 14, 20, 32, 44, 56, 110]
STEPS_RANGE, BATCH_RANGE = (10, 20000), (4, 1024)  # the widgets' bounds, also for settings from the URL
DATASET_LABELS = {"shapes": "Bundled shapes (offline)", "cifar10": "CIFAR-10 (downloaded once)",
                  "folder": "Server image folder"}
route_through_app()
RECORDED = "Recorded race (shipped with the app)"
LIVE = "Live race"

st.title("Training race")
st.markdown("Train ResNets and their plain twins of two or more depths **side by side**. Every twin pair starts "
            "from the same weights and sees the same batches in the same order. Watch the *degradation problem*: "
            "the deeper plain net trains **worse** than the shallower one, the deeper ResNet does not.")

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
    names = ["shapes", "cifar10"]
    if os.environ.get(rr.FOLDER_ENV):  # set by the server's operator, never typed by a visitor
        names.append("folder")
    return names


def _query_preset() -> tuple[dict, list[str]]:
    """Settings from the URL (``?depths=20,56&steps=100&batch=16``), so a teacher can share a prepared race.

    Returns the settings that parse and are in range, and a note for each one that does not (its default stays).
    """
    preset, problems = {}, []
    params = st.query_params
    raw = params.get("depths", "")
    if raw:
        depths = [d.strip() for d in raw.split(",") if d.strip()]
        if depths and all(d.isdigit() and int(d) in DEPTH_CHOICES for d in depths):
            preset["depths"] = [int(d) for d in depths]
        else:
            problems.append(f"`depths={raw}` is not valid (choose from {', '.join(map(str, DEPTH_CHOICES))}, "
                            "separated by commas); using the default depths.")
    for name, (low, high) in (("steps", STEPS_RANGE), ("batch", BATCH_RANGE)):
        value = params.get(name, "")
        if value.isdigit() and low <= int(value) <= high:
            preset[name] = int(value)
        elif value:
            problems.append(f"`{name}={value}` is not valid (a whole number from {low} to {high}); "
                            "using the default.")
    return preset, problems


def _settings() -> tuple[rr.RaceConfig | None, str | None]:
    base = rr.quick_recipe(device())
    preset, problems = _query_preset()
    for problem in problems:
        st.warning(f"Ignored a setting in the URL: {problem}")
    with st.expander("Race settings", expanded=False):
        c1, c2, c3 = st.columns(3)
        depths = c1.multiselect("Depths", DEPTH_CHOICES, default=preset.get("depths", [20, 56]), key="race_depths",
                                help="6n+2 layers, as in He et al.'s CIFAR networks.")
        twins = c2.multiselect("Networks", ["resnet", "plain"], default=["resnet", "plain"], key="race_twins",
                               format_func=lambda t: "ResNet" if t == "resnet" else "Plain twin")
        dataset = c3.selectbox("Data set", _available_datasets(), format_func=DATASET_LABELS.get, key="race_data")
        with st.expander("Advanced recipe"):
            a1, a2, a3, a4 = st.columns(4)
            steps = a1.number_input("Steps", *STEPS_RANGE, preset.get("steps", base.steps), step=10, key="race_steps")
            batch = a2.number_input("Batch size", *BATCH_RANGE, preset.get("batch", base.batch_size), step=4,
                                    key="race_batch")
            optimizer = a3.selectbox("Optimiser", OPTIMIZERS, index=OPTIMIZERS.index(base.optimizer), key="race_opt",
                                     format_func=lambda o: "SGD with momentum" if o == "sgd" else "Adam")
            default_lr = base.lr if optimizer == base.optimizer else (0.1 if optimizer == "sgd" else 1e-3)
            lr = a4.number_input("Learning rate", 1e-5, 2.0, default_lr, format="%.4f", key=f"race_lr_{optimizer}")
            b1, b2, b3, b4 = st.columns(4)
            warmup = b1.number_input("Warm-up steps", 0, 5000, base.warmup_steps, key="race_warmup")
            schedule = b2.selectbox("Decay", SCHEDULES, index=SCHEDULES.index(base.schedule), key="race_sched")
            wd = b3.number_input("Weight decay", 0.0, 0.1, base.weight_decay, format="%.5f", key="race_wd")
            seed = b4.number_input("Seed", 0, 10_000, base.seed, key="race_seed")
    if not depths or not twins:
        return None, "Pick at least one depth and one network."
    try:
        recipe = Recipe(steps=int(steps), batch_size=int(batch), optimizer=optimizer, lr=float(lr),
                        momentum=base.momentum, weight_decay=float(wd), warmup_steps=int(warmup), schedule=schedule,
                        seed=int(seed))
        return rr.RaceConfig(depths=tuple(depths), twins=tuple(twins), dataset=dataset, recipe=recipe), None
    except ValueError as e:
        return None, str(e)


config, problem = _settings()
running = live is not None and not live.done
buttons = st.container(horizontal=True)
if buttons.button("Start", type="primary", icon=":material/play_arrow:", disabled=running or config is None):
    if live is not None:
        live.stop()
    # Tracked per session: closing the tab stops the race (see SessionRaces).
    state["race_live"] = live = session_races().track(rr.Race(config, device=device()).start())
    state["race_show"] = LIVE
    running = True
if buttons.button("Stop", icon=":material/stop:", disabled=not running):
    live.stop()
if running and live.paused:
    if buttons.button("Resume", icon=":material/play_arrow:"):
        live.resume()
elif buttons.button("Pause", icon=":material/pause:", disabled=not running):
    live.pause()
if problem:
    st.warning(problem)


def _store_finished(race: rr.Race) -> None:
    """Keep a finished live race in the session under a readable name (once)."""
    if getattr(race, "stored_as", None) or not race.done or race.status == "failed" or not race.runs:
        return
    state["race_count"] = state.get("race_count", 0) + 1
    name = f"Race {state['race_count']}: " + ", ".join(r.label for r in race.runs) + \
           f" ({race.status}, {datetime.datetime.now():%H:%M})"
    _keep(name, race.to_dict())
    race.stored_as = name
    state.pop("race_live_figures", None)


def _progress(race: rr.Race) -> None:
    p = race.progress()
    if p["status"] == "queued":
        pos = p["queue_position"]
        st.info(f"Waiting for a free trainer: position {pos or 1} in the queue. Other classes are racing.",
                icon=":material/hourglass_top:")
    elif p["status"] == "preparing":
        st.info("Preparing the data and the networks…", icon=":material/hourglass_top:")
    elif p["status"] == "failed":
        st.error(p["message"] or "The race could not run.")
    else:
        eta = "" if p["eta_s"] is None else f" · about {p['eta_s']:.0f} s left"
        paused = " · paused" if p["status"] == "paused" else ""
        st.progress(min(1.0, p["fraction"]), text=f"Step {p['step']} of {p['total']} · "
                    f"{p['images_per_second']:.0f} images/s{eta}{paused}")
    diverged = [r.label for r in race.runs if r.status == "diverged"]
    if diverged:
        st.warning(f"{', '.join(diverged)} diverged (the loss became NaN or infinite) and stopped; the others go on. "
                   "Try a smaller learning rate or a warm-up.")


def _curves(figures: tuple, key: str) -> None:
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures[0], key=f"{key}_loss", use_container_width=True)
    c2.plotly_chart(figures[1], key=f"{key}_error", use_container_width=True)


def _figures(result: dict) -> tuple:
    return race_plots.curves_figure(result, "train_loss"), race_plots.curves_figure(result, "train_error")


def _live_figures(race: rr.Race) -> tuple:
    """The live curves, rebuilt only when the race has taken a step: building them holds the GIL that the
    training thread needs, and a step of four networks often takes longer than the half second between polls."""
    progress = (id(race), race.step, race.status, tuple(run.status for run in race.runs))
    cached = state.get("race_live_figures")
    if cached is None or cached[0] != progress:
        cached = state["race_live_figures"] = (progress, _figures(race.to_dict()))
    return cached[1]


@st.fragment(run_every=0.5 if running else None)
def live_view(show_curves: bool) -> None:
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
        state["race_show"] = getattr(live, "stored_as", None) or RECORDED
if state.get("race_show_next") in choices:
    state["race_show"] = state.pop("race_show_next")
if state.get("race_show") not in choices:
    state["race_show"] = choices[0]
shown = st.selectbox("Show", choices, key="race_show", label_visibility="collapsed")

chart_col, text_col = st.columns([3, 1])
result: dict | None = None
with chart_col:
    if running:  # poll while training, even when another race is on show, to notice the end
        live_view(shown == LIVE)
    if not (shown == LIVE and running):
        if shown == RECORDED:
            result = rr.recorded_race()
            if result is None:
                st.info("No recorded race ships with this installation: press **Start** to race live.")
            else:
                st.caption(f"Recorded with `python -m resnet_viz race` on {result.get('device', 'the CPU')}: "
                           f"{result['dataset'].get('description', '')}. Press **Start** to race live.")
        else:
            result = state["race_results"].get(shown)
        if result:
            _curves(_figures(result), "shown")
            st.dataframe([{k: v for k, v in row.items() if k not in ("arch",)} for row in rr.summary(result)],
                         hide_index=True, column_config={
                             "final_train_loss": st.column_config.NumberColumn("final training loss", format="%.3f"),
                             "final_train_error": st.column_config.NumberColumn("final training error",
                                                                                format="percent"),
                             "test_error": st.column_config.NumberColumn("test error", format="percent")})

with text_col:
    st.markdown("**What to look for**")
    st.markdown("- Same colour = same depth. **Solid** = ResNet, **dashed** = plain twin.\n"
                "- The **deeper plain net** (dashed, more layers) ends **higher** than the shallower plain net: "
                "more layers, yet it fits the *training* data worse. That is not overfitting, it is an "
                "optimisation problem: the *degradation problem*.\n"
                "- The **deeper ResNet** (solid) does not suffer from it: with skip connections, extra layers can "
                "start close to the identity and only add what helps.")
    st.markdown("**In the paper (CIFAR-10 test error)**")
    st.dataframe([{"network": f"ResNet-{d}", "test error": f"{e:.2f} %"}
                  for d, e in rr.PAPER_CIFAR10_TEST_ERROR.items()], hide_index=True)
    st.caption("Plain nets got *worse* with depth: plain-56 trained and tested worse than plain-20 "
               "(He et al. 2015, Fig. 6). Our quick race is far shorter and runs on simple shapes, so the "
               "numbers differ; the ordering is the point.")

if result and not (shown == LIVE and running):
    depths = sorted({run["depth"] for run in result["runs"]})
    with st.expander("Replay: gradient norms and residual ratios during training", expanded=False):
        r1, r2 = st.columns([1, 3])
        depth = r1.selectbox("Depth", depths, key="replay_depth")
        steps = race_plots.snapshot_steps(result, depth)
        if not steps:
            st.info("This race has no snapshots for that depth.")
        else:
            step = r2.select_slider("Training step", steps, value=steps[-1], key=f"replay_step_{shown}_{depth}")
            g, r = st.columns(2)
            g.plotly_chart(race_plots.gradient_snapshot_figure(result, depth, step), use_container_width=True,
                           key="replay_grad")
            r.plotly_chart(race_plots.ratio_snapshot_figure(result, depth, step), use_container_width=True,
                           key="replay_ratio")
            st.caption("Left: how large the gradient is at each layer, from the input (left) to the output (right). "
                       "Right: how much each block's branch F(x) changes its input x. Slide through training to "
                       "see both evolve for the two twins.")

    d1, d2, _ = st.columns([1, 1, 3])
    d1.download_button("Download CSV", rr.race_to_csv(result), file_name="race.csv", mime="text/csv",
                       icon=":material/download:")
    d2.download_button("Download JSON", rr.race_to_json(result), file_name="race.json", mime="application/json",
                       icon=":material/download:")

with st.expander("Load a race file (JSON)"):
    upload = st.file_uploader("A race saved from this page or made with `python -m resnet_viz race`", type=["json"],
                              key="race_upload")
    if upload is not None:
        try:
            loaded = rr.load_race(upload.getvalue())
        except rr.RaceFileError as e:
            st.error(f"Could not load {upload.name}: {e}")
        else:
            name = f"Loaded: {upload.name}"
            if name not in state["race_results"]:
                _keep(name, loaded)
                state["race_show_next"] = name  # the selector exists already: switch on the next run
                st.rerun()
            st.success(f"Loaded {upload.name}; pick it above under *Show*.")
