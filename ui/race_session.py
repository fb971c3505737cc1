"""A visitor's place in the server's races (``resnet_viz.race.registry``): start or join, follow a link, stop or
pause their own view, the queue's note, the budget's note. Worker threads never call st.*; this runs in the
visitor's script run.

Session state: ``race_live`` (the live race this visitor watches), ``race_live_id`` (its id), ``race_results``
(name -> race dict: ``race:<id>`` for the server's finished races, finished or left races, loaded files).
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from typing import Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from resnet_viz import race as rr
from resnet_viz.device import PRECISION_NAMES
from resnet_viz.i18n import _, get_language
from resnet_viz.race import estimate as est
from resnet_viz.race.autotune import describe_choice
from ui.charts import share
from ui.models import device

SERVER = "race:"  # the key of a finished server race in the session's list: race:<id>
MAX_KEPT_RACES = 8  # per session: older results are dropped so a long class cannot grow memory without bound
state = st.session_state


class _Viewer:
    """The visitor's token in the registry; when the session ends (tab closed), the visitor leaves their race."""

    def __init__(self) -> None:
        ctx = get_script_run_ctx(suppress_warning=True)
        self.token = ctx.session_id if ctx is not None else f"anonymous-{id(self)}"

    def release(self) -> None:
        rr.default_registry().leave(self.token)


@st.cache_resource(scope="session", on_release=_Viewer.release, show_spinner=False)
def _viewer() -> _Viewer:
    return _Viewer()


def viewer() -> str:
    return _viewer().token


def keep(name: str, result: dict) -> None:
    """Keep a race in the session's list under ``name`` (the oldest goes beyond :data:`MAX_KEPT_RACES`)."""
    results = state.setdefault("race_results", {})
    results.pop(name, None)
    results[name] = result
    while len(results) > MAX_KEPT_RACES:
        results.pop(next(iter(results)))


def duration_text(seconds: float, about: bool = True, at_least: bool = False) -> str:
    """A duration in the visitor's language: about 3 h 20 min, about 12 min, about 40 s (``about=False``: 12 min;
    ``at_least``: at least 3 h 20 min)."""
    seconds = max(0.0, float(seconds))
    if at_least:
        if seconds >= 3600:
            return _("at least {h} h {m} min").format(h=int(seconds // 3600), m=int(seconds % 3600 // 60))
        if seconds >= 90:
            return _("at least {m} min").format(m=int(seconds // 60))
        return _("at least {s} s").format(s=int(seconds))
    if not about:
        if seconds % 60:
            return _("{s} s").format(s=round(seconds))
        return _("{m} min").format(m=round(seconds / 60))
    if seconds >= 3600:
        return _("about {h} h {m} min").format(h=int(seconds // 3600), m=int(seconds % 3600 // 60))
    if seconds >= 90:
        return _("about {m} min").format(m=round(seconds / 60))
    return _("about {s} s").format(s=max(1, round(seconds)))


def budget_note(config: rr.RaceConfig) -> str | None:
    """Why ``config`` may not train on this server (its estimate exceeds the operator's limit), or None.

    Where this server has no step time yet, a race far over the limit is refused from its arithmetic alone
    (:func:`resnet_viz.race.estimate.floor_verdict`): at once, without waiting for the server's probe."""
    limit = est.budget_limit()
    if limit is None:
        return None
    verdict: est.Verdict | None
    try:
        verdict = est.floor_verdict(config, device(), limit, times=rr.default_registry().times)
    except Exception:  # noqa: BLE001 - the full estimate decides
        verdict = None
    if verdict is None:
        try:
            estimate = estimate_of(config)
        except Exception:  # noqa: BLE001 - no estimate: the race is not refused for it
            return None
        verdict = est.check_budget(estimate, limit, config.recipe.steps)
    if verdict.fits:
        return None
    floor = verdict.estimate.how == "floor"
    note = _(
        "This race would take {estimate} of training on this server, more than the {limit} a visitor's race may "
        "take here (set by the server's operator)."
    ).format(estimate=duration_text(verdict.estimate.seconds, at_least=floor), limit=duration_text(limit, about=False))
    if verdict.max_steps < 10:
        advice = _("Fewer steps are not enough: reduce the batch size, the depths, the seeds or the image size.")
    elif floor:  # the floor's step count is a most, not a promise
        advice = _(
            "Reduce the steps to fewer than {steps}, or the batch size, the depths, the seeds or the image size."
        ).format(steps=verdict.max_steps)
    else:
        advice = _(
            "Reduce the steps to at most {steps}, or the batch size, the depths, the seeds or the image size."
        ).format(steps=verdict.max_steps)
    return note + " " + advice


def estimate_of(config: rr.RaceConfig) -> est.Estimate:
    with st.spinner(_("Measuring how fast this server trains…")):
        return est.estimate_race(config, device(), times=rr.default_registry().times)


def measure_peak(on) -> None:
    """Time this server's matrix product (the budget's floor) while nothing else runs yet: milliseconds."""
    try:
        est.floor_estimate(rr.RaceConfig(), on)  # times the product in the default race's precision
    except Exception:  # noqa: BLE001 - measured when a floor first needs it
        pass


def measure_server(on) -> None:
    """Measure this server's step time once (a worker thread: no st.* here)."""
    try:
        est.estimate_race(rr.RaceConfig(), on, times=rr.default_registry().times)
    except Exception:  # noqa: BLE001 - a visitor's first estimate measures it then
        pass


def start(config: rr.RaceConfig) -> str | None:
    """Start, join or open the race of ``config``; a note when it may not train here."""
    note = budget_note(config)
    if note:
        return note
    try:
        estimate: est.Estimate | None = estimate_of(config)
    except Exception:  # noqa: BLE001 - the queue then tells no time
        estimate = None
    _show(rr.default_registry().open(config, device(), viewer(), estimate=estimate))
    return None


def follow_link() -> None:
    """Open the race of ``?race=<id>`` once per new link: live (joined) or finished."""
    rid = st.query_params.get("race")
    if not rid or rid == state.get("race_link_seen"):
        return
    state["race_link_seen"] = rid
    if rid in (state.get("race_live_id"), _shown_id()):
        return
    opened = rr.default_registry().find(rid, viewer())
    if opened is None:
        st.warning(
            _(
                "No race with the link `race={id}` is on this server: it may have been removed to make room, or "
                "trained on another server."
            ).format(id=rid[:20])
        )
        return
    _show(opened)


def _show(opened) -> None:
    state.pop("race_left", None)
    state.pop("race_pause_refused", None)
    if opened.race is not None:
        state.setdefault("race_saved", {}).pop(opened.id, None)
        state["race_live"], state["race_live_id"] = opened.race, opened.id
        state["race_show"] = "live"
    else:
        keep(SERVER + opened.id, opened.result)
        state["race_show"] = SERVER + opened.id


def _shown_id() -> str | None:
    shown = state.get("race_show") or ""
    if shown == "live":
        return state.get("race_live_id")
    return shown[len(SERVER) :] if shown.startswith(SERVER) else None


def write_link() -> None:
    """Put the id of the server race on show into the URL (``?race=<id>``), or take it out."""
    rid = _shown_id()
    if rid:
        state["race_link_seen"] = rid
        if st.query_params.get("race") != rid:
            st.query_params["race"] = rid
    elif "race" in st.query_params:
        del st.query_params["race"]


def stop_view() -> None:
    """Stop: the visitor's view ends; the race stops when nobody else watches it."""
    race, rid = state.get("race_live"), state.get("race_live_id")
    if race is None:
        return
    registry = rr.default_registry()
    alone = registry.viewers(rid) <= 1
    registry.leave(viewer())
    if alone:
        race.join(5)
    state["race_left"] = race.step  # the step at which this visitor left


def pause() -> None:
    if not rr.default_registry().pause(viewer()):
        state["race_pause_refused"] = True


def resume() -> None:
    rr.default_registry().resume(viewer())


def end_of_view(race: rr.Race) -> str | None:
    """Once the watched race is over (or the visitor left it), keep it in the session's list; the name kept."""
    rid = state.get("race_live_id")
    left = state.get("race_left")
    if not race.done and left is None:
        return None
    saved = state.setdefault("race_saved", {})
    if rid in saved:
        return saved[rid]
    registry = rr.default_registry()
    if race.status == "finished":
        deadline = time.time() + 10
        while rid not in registry.store and time.time() < deadline:  # the keeper is saving it
            time.sleep(0.05)
        result = registry.store.get(rid)
        if result is not None:
            saved[rid] = SERVER + rid
            keep(SERVER + rid, result)
            return saved[rid]
    if race.status == "failed" or not race.runs:
        saved[rid] = None
        return None
    state["race_count"] = state.get("race_count", 0) + 1
    if race.done:
        status = {"finished": _("finished"), "stopped": _("stopped")}.get(race.status, race.status)
    else:
        status = _("you left at step {step}").format(step=left)
    name = _("Race {number}: {runs} ({status}, {time})").format(
        number=state["race_count"],
        runs=", ".join(dict.fromkeys(r.label for r in race.runs)),
        status=status,
        time=f"{datetime.datetime.now():%H:%M}",
    )
    keep(name, race.to_dict())
    saved[rid] = name
    return name


def choice_label(choice: str) -> str:
    """A server race in the session's list: when it trained here and its nets (from the server's store, so the
    label needs no session)."""
    result = rr.default_registry().store.get(choice[len(SERVER) :]) or {}
    trained = result.get("trained") or {}
    if not trained.get("at"):
        return _("Race {id} of this server").format(id=choice[len(SERVER) :])
    at = datetime.datetime.fromisoformat(trained["at"])
    runs = ", ".join(dict.fromkeys(rr.run_label(r["arch"], r["depth"]) for r in result.get("runs", [])))
    return _("Trained on this server ({time} UTC): {runs}").format(time=f"{at:%H:%M}", runs=runs)


def trained_caption(result: dict) -> str:
    """Where, when, how long and how a server race trained."""
    trained = result["trained"]
    at = datetime.datetime.fromisoformat(trained["at"])
    return _(
        "Trained on this server on {date} at {time} UTC in {seconds:.0f} s ({training:.0f} s of training), with "
        "the {choice}. Anyone who starts these settings gets this race at once."
    ).format(
        date=f"{at:%Y-%m-%d}",
        time=f"{at:%H:%M}",
        seconds=trained.get("wall_s", 0),
        training=result.get("elapsed_s", 0),
        choice=describe_choice(result.get("engine_choice"))
        or _("{engine} engine").format(engine=result.get("engine", "?")),
    )


def twin_downloads(rid: str | None, race: rr.Race | None, seed: int) -> None:
    """A race's trained twins, one checkpoint per depth, for the other pages (sidebar upload): from the server's
    store (``rid``), or from a race that ended in the visitor's browser session (``race``)."""
    if rid is not None:
        files = {depth: path.read_bytes for depth, path in rr.default_registry().store.twins(rid).items()}
    elif race is not None and race.done:
        files = {depth: functools.partial(rr.race_twins_bytes, race, depth) for depth in rr.race_pairs(race)}
    else:
        files = {}
    if not files:
        return
    st.markdown(
        _(
            "**This race's trained twins** (seed {seed}): download a depth's pair, then upload it in the "
            "sidebar under *Your own model* to see its curvature and loss landscape, its shattered gradients, "
            "its explanations and its residual branches."
        ).format(seed=seed)
    )
    cols = st.columns(max(len(files), 3))
    for col, (depth, data) in zip(cols, files.items()):
        col.download_button(
            _("Depth {depth} (.safetensors)").format(depth=depth),
            data,
            file_name=f"race-{depth}.safetensors",
            mime="application/octet-stream",
            icon=":material/download:",
            key=f"race_twins_{depth}",
            on_click="ignore",
        )


_live_lock = threading.Lock()
_live_figures: dict[tuple, tuple] = {}  # (race id, each seed, language) -> (the race's progress, its figures)


def live_figures(race: rr.Race, each_seed: bool, build: Callable[[], tuple]) -> tuple:
    """The live race's figures, built once per training step for all its viewers (``build()`` makes them) and
    shared (serialised once, ``ui.charts.share``): thirty viewers of one race cost one figure's work a step, and
    building holds the GIL that the training needs."""
    progress = (race.step, race.status, tuple(run.status for run in race.runs))
    key = (state.get("race_live_id"), each_seed, get_language())
    with _live_lock:
        cached = _live_figures.get(key)
        if cached is None or cached[0] != progress:
            cached = _live_figures[key] = (progress, tuple(share(fig) for fig in build()))
            live = set(rr.default_registry().live_ids())
            for old in [k for k in _live_figures if k[0] not in live and k != key]:
                del _live_figures[old]
        return cached[1]


def progress(race: rr.Race) -> None:
    """The live race's state: its place and estimated start in the queue, preparing, or its progress bar."""
    registry = rr.default_registry()
    rid = state.get("race_live_id")
    p = race.progress()
    if p["status"] in ("created", "queued"):
        place, start = registry.queue().get(rid, (p["queue_position"] or 1, None))
        text = _("Waiting for a trainer: place {place} in the queue of races on this server.").format(place=place)
        if start is not None:
            at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=start)
            text += " " + _(
                "It should start in {wait} (at {time} UTC), from the step times of the races ahead."
            ).format(wait=duration_text(start), time=f"{at:%H:%M}")
        st.info(text, icon=":material/hourglass_top:")
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
    others = registry.viewers(rid) - 1
    st.caption(
        _(
            "Races on this server now: {training} training, {queued} waiting. "
            "Watching this race: you and {others} more."
        ).format(training=registry.training(), queued=registry.queued(), others=max(0, others))
    )
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
