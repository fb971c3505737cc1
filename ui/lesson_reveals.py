"""What each lesson step reveals, computed by the same library calls, presets and caches as the full pages.

No widgets here: the Lesson page draws these, and its handout (built outside the script run, when the
download button is clicked) calls them too. Every number a sentence states comes from the data, and every
answer is the id of one of the step's choices (``resnet_viz.teaching.lesson.STEPS``), not a position.
"""

from __future__ import annotations

import streamlit as st
from PIL import Image

import resnet_viz as rv
from resnet_viz import inside_plots, race_plots, residual_plots
from resnet_viz import race as rr
from resnet_viz.data import TEST_SEED, make_shapes_raw
from resnet_viz.gradients_plots import format_ratio, forward_signal_figure, gradient_norm_figure
from resnet_viz.i18n import _, get_language, language
from resnet_viz.lesion import path_length_distribution
from resnet_viz.models import TWINS
from resnet_viz.teaching import Reveal, compare, preset_view
from ui.charts import share
from ui.compute import lesion_lab, mean_lesion_drops, view_flows
from ui.inside import EVIDENCE_IMAGES, depth_shares
from ui.models import bundled_twins, twins_for
from ui.work import work_slot

# The lesion lab's defaults, so "open the full page" shows the same lab; Grad-CAM on test image #1 of Explain's pool.
LESION_MODEL, LESION_IMAGES, LESION_SAMPLES = "shapes-20", 100, 3
GRADCAM_MODEL, GRADCAM_POOL, GRADCAM_INDEX = "shapes-56", 200, 1
SUMMARY_BLOCKS = 27  # ResNet-56: 3 stages of 9 blocks


def _ratio_answer(ratio: float) -> str:
    """The vanishing step's choice for a first/last gradient ratio: "smaller" (or zero), "larger" or "same"."""
    if ratio < 1e-2:
        return "smaller"
    return "larger" if ratio > 10 else "same"


def _ratio_fact(flows) -> str:
    return _("First/last gradient ratio measured here: {plain} for the plain twin, {resnet} for the ResNet.").format(
        plain=format_ratio(flows["plain"].ratio), resnet=format_ratio(flows["resnet"].ratio)
    )


def reveal_block() -> Reveal:
    return Reveal(answer="input")


def reveal_vanishing() -> Reveal:
    flows = view_flows(preset_view("vanishing"))
    return Reveal(
        answer=_ratio_answer(flows["plain"].ratio), facts=[_ratio_fact(flows)], figures=[gradient_norm_figure(flows)]
    )


def reveal_exploding() -> Reveal:
    flows = view_flows(preset_view("exploding"))
    ratio = flows["plain"].ratio
    answer = "grows" if ratio > 10 else ("vanishes" if ratio < 0.1 else "same")
    return Reveal(
        answer=answer,
        facts=[
            _ratio_fact(flows),
            _(
                "With BatchNorm nothing vanishes, and yet deep plain nets train worse than shallow ones (next step): "
                "degradation is an optimisation difficulty, not simply a gradient that fails to arrive."
            ),
        ],
        figures=[gradient_norm_figure(flows), forward_signal_figure(flows)],
    )


SHATTERED_DEPTH = 56  # the question's net, at the Shattered gradients page's default view


def reveal_shattered() -> Reveal:
    from resnet_viz.shattered_plots import line_gradient_figure
    from ui.compute import cached_shattered_line

    lines = {twin: cached_shattered_line(SHATTERED_DEPTH, twin, "kaiming", 0) for twin in TWINS}
    lag1 = {twin: line.lag1 for twin, line in lines.items()}
    answer = "noise" if lag1["plain"] < lag1["resnet"] - 0.2 else "alike"
    fact = _(
        "Lag-1 autocorrelation of the gradient along a line of {n} inputs, 56 layers at initialisation with "
        "BatchNorm: {plain:.2f} for the plain twin, {resnet:.2f} for the ResNet (1: smooth; 0: white "
        "noise)."
    ).format(n=len(lines["plain"].t), plain=lag1["plain"], resnet=lag1["resnet"])
    figure = line_gradient_figure(
        lines,
        {t: rv.models.twin_label(t) for t in lines},
        title=_("df/dt along a line through a shapes image, 56 layers at initialisation"),
    )
    return Reveal(answer=answer, facts=[fact], figures=[figure])


def reveal_race() -> Reveal | None:
    race = rv.recorded_race()
    if race is None:
        return None
    depths = sorted({run["depth"] for run in race["runs"]})
    shallow, deep = depths[0], depths[-1]
    loss = {(run["arch"], run["depth"]): rr.final_train_loss(run) for run in race["runs"]}
    steps = max(run["history"][-1]["step"] for run in race["runs"] if run["history"])
    deep_loss = compare(loss[("plain", deep)], loss[("plain", shallow)])  # lower loss: fits its data better
    answer = {"lower": "better", "same": "same", "higher": "worse"}[deep_loss]
    fact = _(
        "In the recorded race ({steps} steps), the final training loss of the plain nets is {pd:.3f} at depth "
        "{deep} and {ps:.3f} at depth {shallow}; of the ResNets, {rd:.3f} and {rs:.3f}."
    ).format(
        steps=steps,
        deep=deep,
        shallow=shallow,
        pd=loss[("plain", deep)],
        ps=loss[("plain", shallow)],
        rd=loss[("resnet", deep)],
        rs=loss[("resnet", shallow)],
    )
    return Reveal(answer=answer, facts=[fact], figures=[race_plots.curves_figure(race, "train_loss")])


def reveal_lesion() -> Reveal:
    with work_slot():
        single, curves = lesion_lab(LESION_MODEL, LESION_IMAGES, LESION_SAMPLES)
    resnet = twins_for(LESION_MODEL)[0]
    names = [name for name, _block in resnet.blocks()]
    drops = mean_lesion_drops(single)
    fact = _(
        "Deleting one block costs the ResNet-20 {resnet:.1f} points of accuracy on average, its plain twin "
        "{plain:.1f} points ({n} test images)."
    ).format(resnet=100 * drops["resnet"], plain=100 * drops["plain"], n=LESION_IMAGES)
    loses_more = {"higher": "plain", "same": "same", "lower": "resnet"}[compare(drops["plain"], drops["resnet"])]
    figures = [
        residual_plots.lesion_figure(single, names),
        residual_plots.random_deletion_figure(
            curves, {t: r["baseline"] for t, r in single.items()}, chance=1 / len(rv.SHAPE_CLASSES)
        ),
    ]
    facts = [fact]
    shares = depth_shares(EVIDENCE_IMAGES)  # the Inside a block page's split, for both depths
    if {"ResNet-20", "ResNet-56"} <= set(shares):
        facts.append(
            _(
                "Why: split the class evidence at each block's sum into what arrives along the skip and what the "
                "branch adds. Over {n} test images the median block sends {deep:.0%} of the evidence's size along "
                "its skip in ResNet-56, {shallow:.0%} in ResNet-20: a block whose evidence mostly bypasses its "
                "branch can be deleted cheaply."
            ).format(
                n=EVIDENCE_IMAGES,
                deep=shares["ResNet-56"].overall_median_share(),
                shallow=shares["ResNet-20"].overall_median_share(),
            )
        )
        figures.append(inside_plots.identity_share_figure(shares))
    return Reveal(answer=loses_more, facts=facts, figures=figures)


def reveal_landscape() -> Reveal:
    # The Loss landscape page's own precomputed surfaces and figure (imported here: that page may be absent).
    from resnet_viz.landscape import precomputed_surfaces
    from resnet_viz.landscape_plots import twin_contour_figure

    surfaces = precomputed_surfaces("shapes-56")
    resnet, plain = surfaces["resnet"].nonconvex_share, surfaces["plain"].nonconvex_share
    smoother = {"higher": "resnet", "same": "alike", "lower": "plain"}[compare(plain, resnet)]
    fact = _(
        "Share of non-convex points on the surface: {resnet:.0%} for the ResNet, {plain:.0%} for the plain twin."
    ).format(resnet=resnet, plain=plain)
    return Reveal(answer=smoother, facts=[fact], figures=[twin_contour_figure(surfaces)])


@st.cache_data(show_spinner=False, max_entries=4)
def _gradcam(model: str, index: int):
    """Top-1 Grad-CAM of both twins for one shapes test image (as the Explain page computes it)."""
    images, labels, masks = make_shapes_raw(GRADCAM_POOL, seed=TEST_SEED)
    image = Image.fromarray(images[index])
    resnet, plain, _info = bundled_twins(model)
    with work_slot():
        exps = {m.twin: rv.explain(m, image, topk=1) for m in (resnet, plain)}
    return image, masks[index], int(labels[index]), exps


def reveal_gradcam() -> Reveal:
    from resnet_viz.explain_plots import overlay

    image, mask, true_class, exps = _gradcam(GRADCAM_MODEL, GRADCAM_INDEX)
    scores = {t: rv.localisation(e.heatmaps[0], mask) for t, e in exps.items()}
    inside, share = scores["resnet"]["mass_inside"], scores["resnet"]["object_share"]
    concentration = inside / max(share, 1e-9)  # 1: no more heat on the object than its area
    answer = "object" if concentration > 1.5 else ("background" if concentration < 0.8 else "even")
    facts = [
        _(
            "The image shows a {label}. The ResNet-56 answers '{r}' ({rp:.0%}) with {ri:.0%} of its heat on the "
            "object, which covers {share:.0%} of the image; the plain twin answers '{p}' ({pp:.0%}) with "
            "{pi:.0%} on the object."
        ).format(
            label=rv.shape_class_name(true_class),
            r=rv.class_display_name(exps["resnet"].labels[0]),
            rp=float(exps["resnet"].probs[0]),
            ri=inside,
            share=share,
            p=rv.class_display_name(exps["plain"].labels[0]),
            pp=float(exps["plain"].probs[0]),
            pi=scores["plain"]["mass_inside"],
        )
    ]
    images = [
        (
            overlay(image, exps[t].heatmaps[0], mask=mask),
            _("{twin}: Grad-CAM for '{label}'").format(
                twin="ResNet-56" if t == "resnet" else "Plain-56", label=rv.class_display_name(exps[t].labels[0])
            ),
        )
        for t in TWINS
    ]
    note = None
    if not rv.imagenet_available("resnet18"):
        note = _(
            "ImageNet weights are not on this server, so this step uses the bundled twins, which know eight "
            "shapes, on a shapes test image. With ImageNet weights, the Explain page explains photos."
        )
    return Reveal(answer=answer, facts=facts, images=images, note=note)


def reveal_summary() -> Reveal:
    dist = path_length_distribution(SUMMARY_BLOCKS)
    lo, hi = dist["central_95"]
    fact = _(
        "ResNet-56 has {n} residual blocks, so 2^{n} = {total:,} paths from input to output; 95% of them pass "
        "through between {lo} and {hi} blocks. The plain twin has one path, through all {n}."
    ).format(n=SUMMARY_BLOCKS, total=dist["total"], lo=lo, hi=hi)
    return Reveal(answer="optimisation", facts=[fact], figures=[residual_plots.path_length_figure(dist)])


REVEALS = {
    "block": reveal_block,
    "vanishing": reveal_vanishing,
    "exploding": reveal_exploding,
    "shattered": reveal_shattered,
    "race": reveal_race,
    "lesion": reveal_lesion,
    "landscape": reveal_landscape,
    "gradcam": reveal_gradcam,
    "summary": reveal_summary,
}


@st.cache_resource(show_spinner=False, max_entries=64)
def _shared_reveal(key: str, lang: str) -> Reveal | None:
    """One step's reveal in one language, computed once for every session: a class revealing a step together
    builds and serialises its figures once (:func:`ui.charts.share`), not once per student."""
    with language(lang):
        result = REVEALS[key]()
    for fig in result.figures if result else []:
        share(fig)
    return result


def reveal(key: str) -> Reveal | None:
    """The step's reveal in the session's language; shared, so its figures must not be changed."""
    return _shared_reveal(key, get_language())


def all_reveals(steps) -> dict[str, Reveal | None]:
    """Every step's reveal, for the handout; a step that fails is left out (and logged), not the whole handout."""
    import logging

    out = {}
    for step in steps:
        try:
            out[step.key] = reveal(step.key)
        except Exception:  # noqa: BLE001 - one failing step must not cost the class its handout
            logging.getLogger("resnet_twins").exception("handout: step %s failed", step.key)
            out[step.key] = None
    return out
