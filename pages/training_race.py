"""Training race: ResNets and plain twins of several depths, trained live side by side (He et al. 2015, Fig. 6).

One training per setting on the server (``resnet_viz.race.registry``): Start joins the race of the same settings
that is training, or opens the finished one, or starts it; ``?race=<id>`` opens a race for anyone. The visitor's
part in it lives in ``ui/race_session.py``, the settings in ``ui/race_settings.py``.
"""

from __future__ import annotations

import streamlit as st

from resnet_viz import race as rr
from resnet_viz import race_plots
from resnet_viz.i18n import N_, _, get_language, set_language
from ui import race_session as rs
from ui.charts import show_chart
from ui.models import device
from ui.race_dynamics import dynamics_section
from ui.race_settings import race_settings
from ui.race_views import recipe_text, show_checks
from ui.routing import route_through_app

route_through_app()
RECORDED, LIVE = "recorded", "live"  # the selector's two fixed entries; finished races are listed by name
LOADED = "loaded:"  # the selector's key of a race loaded from a file starts with this, then the file's name
CHOICE_NAMES = {LIVE: N_("Live race"), RECORDED: N_("Recorded race (shipped with the app)")}

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
    """Generate the default race's shapes in the background once per server, while visitors read, and measure
    how fast this server trains (for the queue's estimates and the budget; once per machine)."""
    import threading

    rs.measure_peak(device())  # before the threads below share the cores with it
    threading.Thread(target=rr.load_race_data, args=("shapes",), name="warm-shapes", daemon=True).start()
    threading.Thread(target=rs.measure_server, args=(device(),), name="warm-step-times", daemon=True).start()
    return True


_warm_shapes_cache()
state.setdefault("race_results", {})  # name -> race (dict): the server's finished races, left ones, loaded files
config, problem = race_settings()
rs.follow_link()
live: rr.Race | None = state.get("race_live")
running = live is not None and not live.done and state.get("race_left") is None
over_budget = rs.budget_note(config) if config is not None and not running else None
buttons = st.container(horizontal=True)
if buttons.button(
    _("Start"), type="primary", icon=":material/play_arrow:", disabled=running or config is None or bool(over_budget)
):
    problem = rs.start(config) or problem
    live = state.get("race_live")
    running = live is not None and not live.done and state.get("race_left") is None
buttons.button(_("Stop"), icon=":material/stop:", disabled=not running, on_click=rs.stop_view)
if running and live.paused:
    buttons.button(_("Resume"), icon=":material/play_arrow:", on_click=rs.resume)
else:
    buttons.button(_("Pause"), icon=":material/pause:", disabled=not running, on_click=rs.pause)
for note in (problem, over_budget):
    if note:
        st.warning(note)
if state.pop("race_pause_refused", False):
    st.info(
        _(
            "Other visitors watch this race too, so it cannot be paused: only a race's only viewer can pause it. "
            "**Stop** ends your own view; the race trains on for them."
        )
    )


def draw_race(result: dict | None, key: str, figures: tuple | None = None) -> None:
    """The race's figures, live, recorded, from the server or loaded: the loss and error curves."""
    figures = figures or _figures(result)
    c1, c2 = st.columns(2)
    show_chart(figures[0], where=c1, key=f"{key}_loss")
    show_chart(figures[1], where=c2, key=f"{key}_error")


def _figures(result: dict) -> tuple:
    each_seed = bool(state.get("race_each_seed"))
    return (
        race_plots.curves_figure(result, "train_loss", each_seed=each_seed),
        race_plots.curves_figure(result, "train_error", each_seed=each_seed),
    )


@st.fragment(run_every=0.5 if running else None)
def live_view(show_curves: bool, lang: str) -> None:
    # A fragment's own reruns skip app.py, which sets the language: the full run passes its language along.
    set_language(lang)
    race: rr.Race = state["race_live"]
    rs.progress(race)
    if race.runs and show_curves:
        each_seed = bool(state.get("race_each_seed"))
        draw_race(None, "live", rs.live_figures(race, each_seed, lambda: _figures(race.to_dict())))
    if race.done or state.get("race_left") is not None:
        st.rerun()  # leave polling mode; the full page shows the finished race


if live is not None and not running:
    saved = rs.end_of_view(live)
    if state.get("race_show") == LIVE:
        state["race_show"] = saved or RECORDED
choices = ([LIVE] if running else []) + [RECORDED] + list(state["race_results"])[::-1]
if state.get("race_show_next") in choices:
    state["race_show"] = state.pop("race_show_next")
if state.get("race_show") not in choices:
    state["race_show"] = choices[0]


def _choice_label(choice: str) -> str:
    if choice in CHOICE_NAMES:
        return _(CHOICE_NAMES[choice])
    if choice.startswith(LOADED):
        return _("Loaded: {name}").format(name=choice[len(LOADED) :])
    if choice.startswith(rs.SERVER):
        return rs.choice_label(choice)
    return choice


shown = st.selectbox(_("Show"), choices, key="race_show", label_visibility="collapsed", format_func=_choice_label)
rs.write_link()
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
            if result.get("trained"):
                st.caption(rs.trained_caption(result))
            if recipe_text(result):
                st.caption(_("Recipe: {recipe}.").format(recipe=recipe_text(result)))
            draw_race(result, "shown")
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
            "optimisation problem: the *degradation problem*. A loss near ln 8 = 2.08 is chance level: the "
            "net has learned nothing yet; the checks below say where each net of this race ended.\n"
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
        show_checks(result)
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
    first_seed = rr.race_seeds(result)[0] if result.get("runs") else 0
    if shown.startswith(rs.SERVER):
        rs.twin_downloads(shown[len(rs.SERVER) :], None, first_seed)
    elif live is not None and live.done and shown == state.get("race_saved", {}).get(state.get("race_live_id")):
        rs.twin_downloads(None, live, first_seed)

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
                rs.keep(name, loaded)
                state["race_show_next"] = name  # the selector exists already: switch on the next run
                st.rerun()
            st.success(_("Loaded {name}; pick it above under *Show*.").format(name=upload.name))
