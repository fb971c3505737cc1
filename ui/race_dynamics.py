"""Training dynamics at a glance: a race's gradient norms and residual ratios as layer x step heatmaps, with what
they show written from the race's own numbers.

The page calls :func:`dynamics_section` with the race on show: a live :class:`resnet_viz.race.Race` (redrawn every
few seconds while it trains), or a finished, recorded or loaded race as a dict.
"""

from __future__ import annotations

import math

import streamlit as st

from resnet_viz import race as rr
from resnet_viz import race_dynamics_plots as rd
from resnet_viz.i18n import _, get_language, set_language
from ui.charts import show_chart

LIVE_REFRESH_S = 2.0  # a snapshot comes every 20 steps: several seconds apart even on a fast machine
GROWS, SHRINKS = 3.0, 1 / 3  # first-layer / last-conv gradient beyond these: grows / shrinks toward the input


def dynamics_section(race: rr.Race | dict | None, *, key: str = "dynamics") -> None:
    """The section: a depth (and seed) picker, the two heatmaps of the twins, and the explanation next to them.

    ``race`` is a live race (redrawn while it trains), a race dict, or None (nothing is drawn). ``key`` prefixes
    the section's widget keys.
    """
    if race is None:
        return
    st.subheader(_("Training dynamics at a glance"))
    if isinstance(race, rr.Race) and not race.done:
        st.fragment(_live, run_every=LIVE_REFRESH_S)(race, key, get_language())
    else:
        _draw(race.to_dict() if isinstance(race, rr.Race) else race, key)


def _live(race: rr.Race, key: str, lang: str) -> None:
    # A fragment's own reruns skip app.py, which sets the language: the full run passes it along.
    set_language(lang)
    _draw(race.to_dict(), key, every=race.config.snapshot_every)
    if race.done:
        st.rerun()  # leave polling mode


def _draw(result: dict, key: str, *, every: int | None = None) -> None:
    every = (result.get("config") or {}).get("snapshot_every", 20) if every is None else every
    if every == 0:
        st.info(_("This race records no snapshots of gradients and residual ratios (snapshot_every = 0)."))
        return
    depths = sorted({run["depth"] for run in result.get("runs") or []})
    if not depths:
        st.info(
            _(
                "The heatmaps appear with the race's first snapshot: it records every layer's gradient norm and "
                "every block's ‖F(x)‖/‖x‖ at step 1, then every {every} steps."
            ).format(every=every)
        )
        return
    seeds = rr.race_seeds(result)
    pick = st.columns([1, 1, 3])
    depth = depths[0]
    if len(depths) > 1:
        depth = pick[0].radio(_("Depth"), depths, index=len(depths) - 1, horizontal=True, key=f"{key}_depth")
    seed = seeds[0]
    if len(seeds) > 1:
        seed = pick[1].selectbox(_("Seed"), seeds, key=f"{key}_seed")
    grads = rd.dynamics_grids(result, depth, "grad_norms", seed)
    ratios = rd.dynamics_grids(result, depth, "ratios", seed)
    if not grads and not ratios:
        st.info(
            _(
                "No snapshots yet for depth {depth}: the race records every layer's gradient norm and every "
                "block's ‖F(x)‖/‖x‖ at step 1, then every {every} steps. The heatmaps appear with the first one."
            ).format(depth=depth, every=every)
        )
        return
    figures = _figures(result, depth, seed, grads, ratios, key)
    charts, text = st.columns([5, 2])
    if grads:
        show_chart(figures[0], where=charts, key=f"{key}_grad")
    if ratios:
        show_chart(figures[1], where=charts, key=f"{key}_ratio")
    with text:
        st.markdown("\n".join(explanation(grads, ratios)))


def _figures(
    result: dict, depth: int, seed: int, grads: dict[str, rd.Grid], ratios: dict[str, rd.Grid], key: str
) -> tuple:
    """Both heatmaps, kept while the numbers they draw and the language stay the same: a rerun (a widget, a live
    race's poll without a new snapshot) reuses them (building them takes about 0.2 s, and holds the GIL that a live
    race's training thread needs)."""
    content = tuple(
        (kind, twin, tuple(g.steps), tuple(g.rows), tuple(map(tuple, g.values)))
        for kind, grids in (("grad_norms", grads), ("ratios", ratios))
        for twin, g in grids.items()
    )
    signature = (depth, seed, get_language(), content)
    kept = st.session_state.get(f"{key}_figures")
    if kept is None or kept[0] != signature:
        figures = rd.gradient_heatmap_figure(result, depth, seed), rd.ratio_heatmap_figure(result, depth, seed)
        kept = st.session_state[f"{key}_figures"] = (signature, figures)
    return kept[1]


def _times(value: float) -> str:
    return f"{value:.0f}×" if value >= 10 else f"{value:.2g}×"


def _direction(spread: float) -> str:
    if spread >= GROWS:
        return _("it grows toward the input")
    if spread <= SHRINKS:
        return _("it shrinks toward the input")
    return _("it stays within a factor of 3 from end to end")


def explanation(grads: dict[str, rd.Grid], ratios: dict[str, rd.Grid]) -> list[str]:
    """The explanation next to the heatmaps: how to read them, then what this race's numbers show (markdown
    lines)."""
    lines = [
        _("**How to read it.** Each row is a layer (the input on top), each column a snapshot during training."),
        _(
            "- *Vanishing* gradients: the top rows are darker than the bottom ones, the gradient shrinks on its way "
            "back to the input. *Exploding*: the top rows are brighter, it grows."
        ),
    ]
    said = []
    for grid in grads.values():
        label = rr.run_label(grid.twin, grid.depth)
        for index, when in ((0, grid.steps[0]), (len(grid.steps) - 1, grid.steps[-1])):
            spread = rd.gradient_spread(grid, index)
            if spread is None or (index and len(grid.steps) == 1):
                continue
            said.append((grid.twin, index, spread))
            lines.append(
                _(
                    "- {net} at step {step}: the gradient at the first layer is {times} the one at the last "
                    "convolution: {direction}."
                ).format(net=label, step=when, times=_times(spread), direction=_direction(spread))
            )
    plain_grows = any(twin == "plain" and spread >= GROWS for twin, _i, spread in said)
    plain_shrinks = any(twin == "plain" and spread <= SHRINKS for twin, _i, spread in said)
    if plain_grows and not plain_shrinks:
        lines.append(
            _(
                "- So the plain net's gradient does **not** vanish here. BatchNorm rescales every layer's output, "
                "which keeps the gradient from fading; in a deep plain net it makes it grow toward the input "
                "instead. Either way its early layers get updates out of scale with its late ones."
            )
        )
    closer = [
        index
        for twin, index, spread in said
        if twin == "resnet"
        and any(t == "plain" and i == index and abs(math.log(p)) > abs(math.log(spread)) for t, i, p in said)
    ]
    if closer and len(closer) == len({i for t, i, _s in said if t == "plain"}):
        lines.append(_("- At each of these steps the ResNet's first and last layers are closer in scale."))
    if plain_shrinks:
        lines.append(_("- The plain net's gradient vanishes toward the input here: its first layers learn slowly."))
    for grid in ratios.values():
        median = rd.median_ratio(grid, len(grid.steps) - 1)
        if median is None:
            continue
        if grid.twin == "plain":
            what = _("each of its blocks replaces x by F(x), nothing of x is passed on")
        elif median < 1:
            what = _("its blocks add a small change to x")
        else:
            what = _("its blocks change x by as much as x itself, or more")
        lines.append(
            _("- {net}'s median ‖F(x)‖/‖x‖ at step {step} is {median:.2f}: {what}.").format(
                net=rr.run_label(grid.twin, grid.depth), step=grid.steps[-1], median=median, what=what
            )
        )
    if ratios:
        lines.append(
            _(
                "- Blue: the block's branch F(x) is smaller than its input x; red: larger. A ResNet block "
                "outputs F(x) + x, so blue means it stays close to the identity; a plain block outputs F(x) alone."
            )
        )
    return lines
