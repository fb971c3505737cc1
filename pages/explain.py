"""Explain: attribution maps for a ResNet and its plain twin, side by side, with a sanity check and faithfulness."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

import resnet_viz as rv
from resnet_viz import attribution as A
from resnet_viz.chart_text import heatmap_text
from resnet_viz.data import TEST_SEED, make_shapes_raw
from resnet_viz.explain_plots import (
    RANDOM_LABEL,
    for_display,
    overlay,
    perturbation_figure,
    png_bytes,
    sanity_figure,
    topk_figure,
)
from resnet_viz.i18n import N_, _
from resnet_viz.imaging import ACCEPTED_EXTENSIONS, ImageError, load_image
from resnet_viz.models import TWINS, twin_label
from ui.charts import show_chart
from ui.models import (
    IMAGENET_SOURCES,
    UPLOAD_SOURCE,
    available_sources,
    ensure_imagenet,
    session_models,
    source_label,
    twins_for,
)
from ui.routing import route_through_app
from ui.url_state import Choice, ChoiceList, UrlState
from ui.widgets import keep_values
from ui.work import wait_message, work_slot

route_through_app()
N_SHAPES_SAMPLES = 200
LIVE_SHAPES_IMAGES = 24  # shapes test images for a live evaluation of an uploaded shapes checkpoint
MAX_CHANNELS = 256  # Score-CAM and Ablation-CAM perturb at most this many feature maps (the most active ones)
KINDS = {"shapes": N_("Shapes sample"), "photo": N_("Sample photo"), "upload": N_("Upload"), "camera": N_("Camera")}

st.title(_("Explain"))
st.markdown(
    _(
        "Where does each twin look when it decides? Choose one or more **attribution methods**: each "
        "colours the pixels by how much they raised the chosen class's score. Warm colours mark the "
        "regions that pushed the prediction up. **Grad-CAM** (the default) weighs a layer's feature maps "
        "by how much they raise the class's score and keeps the positive evidence. Below the maps: how "
        "faithful each method is, and a sanity check."
    )
)


@st.cache_data(show_spinner=False)
def shapes_samples():
    return make_shapes_raw(N_SHAPES_SAMPLES, seed=TEST_SEED)


@st.cache_data(show_spinner=False, max_entries=32)
def decode_upload(data: bytes) -> np.ndarray:
    return np.asarray(load_image(data))


def _model(source: str, twin: str):
    resnet, plain, _info = twins_for(source)
    return resnet if twin == "resnet" else plain


@st.cache_data(show_spinner=False, max_entries=128)
def cached_explain(
    source: str,
    twin: str,
    image_key: str,
    _image: Image.Image,
    layer: str,
    class_ids: tuple[int, ...] | None,
    model_key: str = "",
) -> rv.Explanation:
    return rv.explain(
        _model(source, twin), _image, topk=5, layer=layer, class_ids=list(class_ids) if class_ids else None
    )


@st.cache_data(show_spinner=False, max_entries=256)
def cached_attribute(
    source: str,
    twin: str,
    image_key: str,
    _image: Image.Image,
    method: str,
    target: int,
    options: tuple,
    model_key: str = "",
) -> np.ndarray:
    return rv.attribute(_model(source, twin), _image, method=method, target=target, **dict(options)).map


@st.cache_data(show_spinner=False, max_entries=128)
def cached_cams(
    source: str,
    twin: str,
    image_key: str,
    _image: Image.Image,
    methods: tuple[str, ...],
    target: int,
    layer: str,
    model_key: str = "",
) -> dict[str, np.ndarray]:
    """Every chosen one-pass CAM for one twin and class, from one pass."""
    result = rv.cams(_model(source, twin), _image, methods=list(methods), class_ids=[target], layer=layer)
    return {m: maps[0] for m, maps in result.maps.items()}


def perturbation_cams(
    source: str,
    twin: str,
    image_key: str,
    image: Image.Image,
    methods: list[str],
    target: int,
    layer: str,
    model_key: str,
    on_progress,
) -> dict[str, np.ndarray]:
    """Score-CAM and Ablation-CAM (one model evaluation per feature map), kept in the visitor's session: their
    progress bar is drawn while they run, which a cached function could not do."""
    store = st.session_state.setdefault("explain-perturbation-cams", {})
    key = (source, twin, image_key, tuple(methods), target, layer, model_key)
    if key not in store:
        result = rv.cams(
            _model(source, twin),
            image,
            methods=methods,
            class_ids=[target],
            layer=layer,
            max_channels=MAX_CHANNELS,
            on_progress=on_progress,
        )
        while len(store) >= 16:
            store.pop(next(iter(store)))
        store[key] = {m: maps[0] for m, maps in result.maps.items()}
    return store[key]


@st.cache_data(show_spinner=False, max_entries=64)
def cached_precomputed(name: str):
    return A.load_precomputed(name)


def pick_image(source: str):
    """The image to explain, its mask and true label (shapes only), or None."""
    bundled = source.startswith("shapes")
    st.session_state.setdefault(f"kind-{bundled}", "shapes" if bundled else "photo")
    kind = st.radio(_("Image"), list(KINDS), horizontal=True, key=f"kind-{bundled}", format_func=lambda k: _(KINDS[k]))
    if kind == "shapes":
        images, labels, masks = shapes_samples()
        st.session_state.setdefault("explain-sample", 3)
        i = st.slider(
            _("Sample"),
            0,
            N_SHAPES_SAMPLES - 1,
            key="explain-sample",
            help=_("Test images the bundled twins never saw."),
        )
        return Image.fromarray(images[i]), masks[i], rv.shape_class_name(labels[i])
    if kind == "photo":
        photos = rv.sample_images()
        name = st.selectbox(_("Photo"), list(photos), format_func=str.title, key="explain-photo")
        return load_image(photos[name].read_bytes()), None, None
    if kind == "upload":
        upload = st.file_uploader(
            _("Upload an image (PNG, JPEG, WebP, BMP or GIF; at most 20 MB)"),
            type=list(ACCEPTED_EXTENSIONS),
            max_upload_size=20,
        )
    else:
        upload = st.camera_input(_("Take a photo"))
    if upload is None:
        st.info(_("Choose a file to see what the twins make of it."), icon=":material/upload:")
        return None
    return Image.fromarray(decode_upload(upload.getvalue())), None, None


def options_for(method: str, layer: str, smoothgrad: bool) -> tuple:
    if "max_channels" in A.METHODS[method].options:
        return (("layer", layer), ("max_channels", MAX_CHANNELS))
    if A.METHODS[method].takes_layer:
        return (("layer", layer),)
    if smoothgrad and "smoothgrad" in A.METHODS[method].options:
        return (("smoothgrad", True),)
    return ()


def map_caption(method: str, label: str, layer: str, smoothgrad: bool) -> str:
    if A.METHODS[method].takes_layer:
        return _("{method} for '{label}' at {layer}").format(method=method, label=label, layer=layer)
    if smoothgrad and "smoothgrad" in A.METHODS[method].options:
        return _("{method} (SmoothGrad) for '{label}'").format(method=method, label=label)
    return _("{method} for '{label}'").format(method=method, label=label)


def thumbnail(image: Image.Image, heatmap: np.ndarray, alpha: float, side: int = 112) -> Image.Image:
    """A small overlay for the sanity-check strip."""
    if min(image.size) > side:
        scale = side / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        heatmap = np.asarray(Image.fromarray(heatmap.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    return overlay(image, np.clip(heatmap, 0, 1), alpha=alpha, min_side=side)


def table_frame(rows_by_twin: dict[str, list[dict]], *, skips_removed: bool) -> tuple[pd.DataFrame, str]:
    """The evaluation table for display (translated headers) and as CSV (plain keys)."""
    records = []
    for twin, rows in rows_by_twin.items():
        for row in rows:
            records.append({"twin": twin, **{k: row.get(k) for k in A.TABLE_COLUMNS}})
    raw = pd.DataFrame.from_records(records)
    shown = pd.DataFrame(
        {
            _("Method"): [_(RANDOM_LABEL) if m == A.RANDOM else m for m in raw["method"]],
            _("Twin"): [twin_label(t, skips_removed=skips_removed) for t in raw["twin"]],
            _("Images"): raw["images"],
            _("Peak on the object"): raw["pointing_game"],
            _("Heat on the object"): raw["mass_inside"],
            _("Object's share of the image"): raw["object_share"],
            _("Deletion AUC (lower is better)"): raw["deletion_auc"],
            _("Insertion AUC (higher is better)"): raw["insertion_auc"],
        }
    )
    return shown, raw.to_csv(index=False, float_format="%.4f")


def unmeasured_notice(
    rows_by_twin: dict[str, list[dict]], methods: list[str], source: str, *, skips_removed: bool
) -> None:
    """Say which chosen methods the shipped table has no row for, and how to get them."""
    for twin in TWINS:
        measured = {row["method"] for row in rows_by_twin.get(twin, [])}
        missing = [m for m in methods if m not in measured]
        if missing:
            command = f"python -m resnet_viz attributions {source} --twins {twin} --methods " + " ".join(
                f'"{m}"' if " " in m else m for m in missing
            )
            st.info(
                _(
                    "The shipped table has no row for {methods} on the {twin}. Measure them on this image with "
                    "the button below, or add them to the table with `{command}`."
                ).format(
                    methods=", ".join(missing),
                    twin=twin_label(twin, lowercase=True, skips_removed=skips_removed),
                    command=command,
                ),
                icon=":material/info:",
            )


def show_table(rows_by_twin, *, skips_removed: bool, file_name: str, key: str) -> None:
    shown, csv = table_frame(rows_by_twin, skips_removed=skips_removed)
    percent = st.column_config.NumberColumn(format="percent")
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            _("Peak on the object"): percent,
            _("Heat on the object"): percent,
            _("Object's share of the image"): percent,
            _("Deletion AUC (lower is better)"): number,
            _("Insertion AUC (higher is better)"): number,
        },
    )
    st.download_button(_("Download the table (CSV)"), csv, file_name=file_name, mime="text/csv", key=key)


def pointing_summary(rows_by_twin: dict[str, list[dict]], default_layer: str, *, skips_removed: bool) -> str:
    """Plain words from the measured numbers: how often each twin's Grad-CAM points at the object, and the best."""
    lines = []
    for twin, rows in rows_by_twin.items():
        by = {r["method"]: r for r in rows if r.get("pointing_game") is not None}
        if "Grad-CAM" not in by or A.RANDOM not in by:
            continue
        best = max((r for r in by.values() if r["method"] != A.RANDOM), key=lambda r: r["pointing_game"])
        n = by["Grad-CAM"]["images"]
        margin = 1.96 * np.sqrt(0.25 / n)
        lines.append(
            _(
                "- **{twin}**: Grad-CAM at {layer} peaks on the object in {cam:.0%} of {n} test images; "
                "the best here is {best} with {best_rate:.0%} (a random map: {rnd:.0%}, the object covers "
                "{share:.0%} of the image). Rates are within about ±{margin:.0%}."
            ).format(
                twin=twin_label(twin, skips_removed=skips_removed),
                layer=default_layer,
                cam=by["Grad-CAM"]["pointing_game"],
                n=n,
                best=best["method"],
                best_rate=best["pointing_game"],
                rnd=by[A.RANDOM]["pointing_game"],
                share=by[A.RANDOM]["object_share"],
                margin=margin,
            )
        )
    return "\n".join(lines)


def stage_choices(view: dict) -> list[str] | None:
    """The chosen model's stages (None while its ImageNet weights are not downloaded)."""
    source = view["model"]
    if source in IMAGENET_SOURCES and not rv.imagenet_available(source):
        return None
    return twins_for(source)[0].stage_names


# The view in the URL: ?model=shapes-56&methods=Occlusion,Saliency&stage=layer2. An upload (image or checkpoint)
# never is.
URL = UrlState(
    "explain",
    [
        Choice("model", lambda view: available_sources(), key="explain-model", private=frozenset({UPLOAD_SOURCE})),
        ChoiceList("methods", rv.ATTRIBUTION_METHODS, [A.DEFAULT_METHOD], key="explain-methods"),
        Choice("stage", stage_choices, lambda stages: stages[-1], key="explain-stage"),
    ],
)


# --- model and image --------------------------------------------------------------------------------------------
URL.read()
URL.write()  # now, from the widgets' state: the page may stop before it draws them all
# Drawn after a point where the page may stop (weights to download, no image yet): see ui.widgets.
keep_values(
    "kind-True",
    "kind-False",
    "explain-sample",
    "explain-photo",
    "explain-class",
    "explain-opacity",
    "explain-smoothgrad",
)
options = available_sources()
source = st.selectbox(
    _("Model"),
    options,
    format_func=source_label,
    help=_("The bundled twins work offline. ImageNet weights are downloaded once."),
    key="explain-model",
)
imagenet = source in IMAGENET_SOURCES
if imagenet and not ensure_imagenet(source):
    st.stop()
resnet, plain, info = twins_for(source)
models = {"resnet": resnet, "plain": plain}
skips_removed = imagenet or bool(info.get("plain_is_resnet_without_skips"))

try:
    picked = pick_image(source)
except ImageError as exc:
    st.error(_("This image can't be explained: {reason}").format(reason=exc), icon=":material/broken_image:")
    st.stop()
if picked is None:
    st.stop()
image, mask, true_label = picked

if source.startswith("shapes") and true_label is None:
    st.warning(
        _(
            "The bundled twins know only eight shapes ({classes}), so their answers on a photo are guesses. "
            "Pick an ImageNet model to explain photos."
        ).format(classes=", ".join(rv.shape_class_name(i) for i in range(len(rv.SHAPE_CLASSES)))),
        icon=":material/info:",
    )

methods = st.multiselect(_("Methods"), list(rv.ATTRIBUTION_METHODS), key="explain-methods", help=A.methods_help()) or [
    A.DEFAULT_METHOD
]
c1, c2, c3 = st.columns([1, 1, 1])
layer = c1.selectbox(
    _("Stage"),
    resnet.stage_names,
    key="explain-stage",
    help=_(
        "Used by the CAM methods and Guided Grad-CAM. Later stages see larger, more semantic "
        "regions; earlier stages give finer maps."
    ),
)
st.session_state.setdefault("explain-opacity", 0.5)  # the default here, not in the widget (see keep_values)
alpha = c3.slider(_("Heatmap opacity"), 0.0, 1.0, step=0.05, key="explain-opacity")
smoothgrad = False
if "Integrated Gradients" in methods:
    smoothgrad = st.toggle(
        _("SmoothGrad for Integrated Gradients"),
        key="explain-smoothgrad",
        help=_(
            "Average Integrated Gradients over 8 noisy copies of the image (captum's "
            "NoiseTunnel): smoother maps, 8 times the work."
        ),
    )
if any(A.METHODS[m].expensive for m in methods) and not source.startswith("shapes"):
    st.caption(
        _(
            "Occlusion, Integrated Gradients, Score-CAM and Ablation-CAM run the network hundreds of times: "
            "on an ImageNet model expect several seconds per map. Score-CAM and Ablation-CAM use the stage's "
            "{n} most active feature maps at most."
        ).format(n=MAX_CHANNELS)
    )

image_key = hashlib.sha1(np.asarray(image).tobytes()).hexdigest()
model_key = session_models().cache_key(source)
status = st.empty()
with work_slot(on_wait=wait_message(status, N_("explanations"))), st.spinner(_("Explaining…")):
    top = {twin: cached_explain(source, twin, image_key, image, layer, None, model_key) for twin in TWINS}
status.empty()
candidates = list(dict.fromkeys([*map(int, top["resnet"].indices), *map(int, top["plain"].indices)]))
names = dict(zip(map(int, top["resnet"].indices), top["resnet"].labels)) | dict(
    zip(map(int, top["plain"].indices), top["plain"].labels)
)
by_label = {}
for cid in candidates:  # ImageNet repeats a few names ("crane"): keep labels unique
    by_label[names[cid] if names[cid] not in by_label else f"{names[cid]} (#{cid})"] = cid
chosen = by_label[
    c2.selectbox(
        _("Class to explain"),
        list(by_label),  # stable names as values: the choice survives a change of language
        format_func=rv.class_display_name,
        key="explain-class",
        help=_("Any class in either twin's top 5; every map explains the same class."),
    )
]

if true_label is not None:
    st.caption(_("True class: **{label}**. The white outline marks the object.").format(label=true_label))

# --- the maps: rows = methods, columns = twins ---------------------------------------------------------------------
maps: dict[tuple[str, str], np.ndarray] = {}
one_pass = tuple(
    m for m in methods if A.METHODS[m].cam is not None and not A.METHODS[m].expensive and m != A.DEFAULT_METHOD
)
perturbing = [m for m in methods if A.METHODS[m].cam is not None and A.METHODS[m].expensive]
todo = [(m, t) for m in methods for t in TWINS if m not in one_pass and m not in perturbing]
progress = st.empty()
stop_slot = st.empty()
perturbation_key = (source, model_key, image_key, chosen, layer, tuple(perturbing))
if st.session_state.get("explain-cams-stop"):  # Stop was pressed while they ran: keep them off until asked
    st.session_state["explain-cams-stopped"] = perturbation_key
with work_slot(on_wait=wait_message(status, N_("explanations"))):
    for twin in TWINS:
        if one_pass:
            maps.update(
                {
                    (m, twin): heat
                    for m, heat in cached_cams(
                        source, twin, image_key, image, one_pass, chosen, layer, model_key
                    ).items()
                }
            )
    if perturbing and st.session_state.get("explain-cams-stopped") != perturbation_key:
        stop_slot.button(_("Stop"), icon=":material/stop:", key="explain-cams-stop")
        for i, twin in enumerate(TWINS):

            def cam_progress(done, total, i=i, twin=twin):  # each update lets Streamlit stop the run on Stop
                progress.progress(
                    (i + done / max(total, 1)) / 2,
                    text=_("{methods} for the {twin}: feature map {done} of {total}…").format(
                        methods=", ".join(perturbing),
                        twin=twin_label(twin, skips_removed=skips_removed),
                        done=done,
                        total=total,
                    ),
                )

            maps.update(
                {
                    (m, twin): heat
                    for m, heat in perturbation_cams(
                        source, twin, image_key, image, perturbing, chosen, layer, model_key, cam_progress
                    ).items()
                }
            )
        stop_slot.empty()
    for done, (method, twin) in enumerate(todo):
        if method == A.DEFAULT_METHOD and chosen in top[twin].indices:
            maps[(method, twin)] = top[twin].heatmaps[list(top[twin].indices).index(chosen)]
            continue
        if A.METHODS[method].expensive or len(todo) > 2:
            progress.progress(
                done / len(todo),
                text=_("Computing {method} for the {twin} ({done} of {total})…").format(
                    method=method, twin=twin_label(twin, skips_removed=skips_removed), done=done + 1, total=len(todo)
                ),
            )
        if method == A.DEFAULT_METHOD:
            maps[(method, twin)] = cached_explain(source, twin, image_key, image, layer, (chosen,), model_key).heatmaps[
                0
            ]
        else:
            maps[(method, twin)] = cached_attribute(
                source, twin, image_key, image, method, chosen, options_for(method, layer, smoothgrad), model_key
            )
status.empty()
progress.empty()

if perturbing and st.session_state.get("explain-cams-stopped") == perturbation_key:
    st.info(_("Stopped: {methods} not computed.").format(methods=", ".join(perturbing)), icon=":material/stop:")
    if st.button(_("Compute {methods}").format(methods=", ".join(perturbing)), key="explain-cams-resume"):
        st.session_state.pop("explain-cams-stopped", None)
        st.rerun()

header = st.columns(2)
for column, twin in zip(header, TWINS):
    column.subheader(twin_label(twin, skips_removed=skips_removed))
for method in methods:
    if (method, TWINS[0]) not in maps:  # stopped
        continue
    columns = st.columns(2)
    for column, twin in zip(columns, TWINS):
        heatmap = maps[(method, twin)]
        with column:
            picture = overlay(
                image, for_display(heatmap, pixel_method=not A.METHODS[method].layered), alpha=alpha, mask=mask
            )
            st.image(
                picture,
                caption=map_caption(method, rv.class_display_name(names[chosen]), layer, smoothgrad),
                width="stretch",
                output_format="PNG",
                alt=heatmap_text(heatmap),
            )
            if heatmap.max() == 0:
                st.caption(_("No positive evidence for this class here: the map is empty."))
            if mask is not None:
                score = rv.localisation(heatmap, mask)
                m1, m2 = st.columns(2)
                m1.metric(
                    _("Heat on the object"),
                    f"{score['mass_inside']:.0%}",
                    help=_(
                        "Share of the map's mass inside the object, which covers {share:.0%} of the image. "
                        "A map that ignored the object would score about that."
                    ).format(share=score["object_share"]),
                )
                m2.metric(_("Peak on the object"), _("yes") if score["peak_inside"] else _("no"))
            slug = method.lower().replace(" ", "-")
            st.download_button(
                _("Download overlay (PNG)"),
                png_bytes(picture),
                file_name=f"{slug}-{twin}{'-' + layer if A.METHODS[method].takes_layer else ''}.png",
                mime="image/png",
                key=f"dl-{slug}-{twin}",
            )

columns = st.columns(2)
for column, twin in zip(columns, TWINS):
    show_chart(topk_figure(top[twin], twin, highlight=chosen), where=column, key=f"topk-{twin}")

with st.expander(_("How to read this")):
    st.markdown(
        _("- Both twins started from the **same weights**; ")
        + (
            _(
                "the plain twin here is the trained ResNet with its skip connections removed, so it shows how much "
                "the trained network relies on them (it usually falls apart)."
            )
            if skips_removed
            else _("each was then trained with the same recipe and batches, so differences come from the skips.")
        )
        + "\n"
        + _(
            "- Grad-CAM is computed at the chosen stage (Selvaraju et al. 2017): the gradient of the class "
            "score, averaged over the stage's feature map, weighs each channel. Maps are scaled so their peak "
            "is 1; they show *where* evidence is, not how confident the model is (see the bars)."
        )
        + "\n"
        + _(
            "- The other CAM methods weigh the same stage's feature maps differently (HiResCAM, Grad-CAM++, "
            "XGrad-CAM, LayerCAM use the gradients; Eigen-CAM only the feature maps; Score-CAM and Ablation-CAM "
            "mask the image or remove one feature map at a time): all come from the pass Grad-CAM makes."
        )
        + "\n"
        + _(
            "- Pixel-level methods (all but the CAM methods and Occlusion) give speckled maps; they are shown "
            "with their top 1% of pixels at full colour."
        )
        + "\n"
        + _("- A heatmap is an explanation of one model on one image, not proof of what it has learned in general.")
    )

# --- how faithful is each map ----------------------------------------------------------------------------------------
st.header(_("How faithful is each map?"))
st.markdown(
    _(
        "A map is useful only if it marks what the model actually uses. Four measures, on images whose object is "
        "known: **peak on the object** (the pointing game: is the map's maximum inside the object?), **heat on the "
        "object** (the share of the map inside it), and the **deletion** and **insertion** curves (Petsiuk et al. "
        "2018): remove the most important pixels first and watch the class's probability fall (a small area is "
        "good), or reveal them first on a blurred image and watch it rise (a large area is good). A map of random "
        "noise is the baseline every method must beat."
    )
)
precomputed = cached_precomputed(source) if source in rv.list_bundled() else None
if precomputed is not None:
    rows_by_twin = {t: precomputed["twins"][t]["rows"] for t in TWINS if "rows" in precomputed["twins"].get(t, {})}
    st.caption(
        _(
            "Measured on {n} fresh test images of the shapes set (never seen in training), explaining the true "
            "class; Grad-CAM at the last stage unless a stage is named. Regenerate with `{command}`."
        ).format(n=precomputed["images"], command=precomputed["command"])
    )
    show_table(rows_by_twin, skips_removed=skips_removed, file_name=f"attributions-{source}.csv", key="dl-table")
    unmeasured_notice(rows_by_twin, methods, source, skips_removed=skips_removed)
    st.markdown(pointing_summary(rows_by_twin, resnet.default_layer, skips_removed=skips_removed))
    shown_methods = methods + [
        r["method"]
        for r in rows_by_twin.get("resnet", [])
        if r["method"].startswith("Grad-CAM (") and "Grad-CAM" in methods
    ]
    show_chart(perturbation_figure(rows_by_twin, shown_methods), key="curves-precomputed")

live_key = ("evaluation", source, model_key, image_key, chosen, tuple(methods), layer, smoothgrad)
shapes_checkpoint = (
    not source.startswith("shapes") and not imagenet and list(resnet.class_names or []) == rv.SHAPE_CLASSES
)
label = (
    _("Evaluate the chosen methods on {n} shapes test images").format(n=LIVE_SHAPES_IMAGES)
    if shapes_checkpoint
    else _("Measure the chosen methods on this image")
)
if st.button(
    label,
    key="explain-evaluate",
    help=_(
        "Computed now for your model and image: deletion and insertion curves, and the object measures "
        "where the object is known."
    ),
):
    bar = st.progress(0.0, text=_("Measuring…"))
    if shapes_checkpoint:
        x_eval, y_eval, m_eval = rv.make_shapes(LIVE_SHAPES_IMAGES, seed=TEST_SEED)
    specs = [(m, m, dict(options_for(m, layer, smoothgrad))) for m in methods]
    result = {}
    with work_slot(on_wait=wait_message(status, N_("explanations"))):
        for i, twin in enumerate(TWINS):

            def report(done, total, i=i):
                bar.progress(
                    (i + done / total) / 2,
                    text=_("Measuring… {done} of {total} maps for the {twin}").format(
                        done=done, total=total, twin=twin_label(TWINS[i], skips_removed=skips_removed)
                    ),
                )

            if shapes_checkpoint:
                result[twin] = A.evaluate_attributions(
                    models[twin], x_eval, y_eval, m_eval, methods=specs, on_progress=report
                )
            else:
                result[twin] = A.evaluate_image(
                    models[twin], image, chosen, mask=mask, methods=specs, on_progress=report
                )
    bar.empty()
    st.session_state["explain-live-evaluation"] = (live_key, result)
stored = st.session_state.get("explain-live-evaluation")
if stored and stored[0] == live_key:
    st.subheader(_("Measured now") if shapes_checkpoint else _("Measured on this image"))
    show_table(stored[1], skips_removed=skips_removed, file_name="attributions-live.csv", key="dl-table-live")
    show_chart(perturbation_figure(stored[1], methods), key="curves-live")

# --- sanity check ----------------------------------------------------------------------------------------------------
st.header(_("Sanity check: does the map depend on the model?"))
st.markdown(
    _(
        "Adebayo et al. (2018) destroyed a trained network's weights layer by layer, from the output down to the "
        "input, "
        "and watched the maps. A map that **explains the model** must change as its weights become random. A map that "
        "**barely changes** shows the image's edges, not what the model learned: such a method fails the check. The "
        "paper found that Guided Backprop and Guided Grad-CAM fail, while the plain gradient (Saliency) and Grad-CAM "
        "pass. Similarity is measured as the rank correlation of the absolute maps (Spearman) and as SSIM: both are 1 "
        "for the original map."
    )
)
if precomputed is not None:
    sanity = {t: precomputed["twins"][t]["sanity"] for t in TWINS if "sanity" in precomputed["twins"].get(t, {})}
    st.caption(
        _("Mean over {n} test images for the selected methods; ours below is for your image.").format(
            n=precomputed["sanity_images"]
        )
    )
    show_chart(sanity_figure(sanity, methods), key="sanity-precomputed")
    verdicts = []
    for method in methods:
        for twin in TWINS:
            verdict = A.sanity_verdict(sanity.get(twin, {}).get(method, {}).get("spearman", []))
            if verdict is None:
                continue
            verdicts.append(
                _(
                    "- {method}, {twin}: {verdict} (rank correlation {head:.2f} after the head is "
                    "randomised, {last:.2f} once every layer is)."
                ).format(
                    method=method,
                    twin=twin_label(twin, skips_removed=skips_removed),
                    verdict=_(verdict.reason),
                    head=verdict.head,
                    last=verdict.final,
                )
            )
    st.markdown("\n".join(verdicts))

sanity_key = ("sanity", source, model_key, image_key, chosen, tuple(methods), layer, smoothgrad)
if st.button(
    _("Run the sanity check on this image"),
    key="explain-sanity",
    help=_("Randomises a private copy of each twin, layer by layer; the shared models are not touched."),
):
    bar = st.progress(0.0, text=_("Randomising…"))
    granularity = A.granularity_for(resnet)
    jobs = [(m, t) for m in methods for t in TWINS]
    result = {}
    with work_slot(on_wait=wait_message(status, N_("explanations"))):
        for j, (method, twin) in enumerate(jobs):

            def report(done, total, j=j, method=method):
                bar.progress(
                    (j + done / total) / len(jobs),
                    text=_("Sanity check: {method}, step {done} of {total}").format(
                        method=method, done=done, total=total
                    ),
                )

            result[(method, twin)] = A.sanity_check(
                models[twin],
                image,
                method=method,
                target=chosen,
                granularity=granularity,
                on_step=report,
                **dict(options_for(method, layer, smoothgrad)),
            )
    bar.empty()
    st.session_state["explain-sanity-result"] = (sanity_key, result)
stored = st.session_state.get("explain-sanity-result")
if stored and stored[0] == sanity_key:
    result = stored[1]
    curves = {
        t: {
            m: {
                "layers": [s.layer for s in result[(m, t)]],
                "spearman": [s.spearman for s in result[(m, t)]],
                "ssim": [s.ssim for s in result[(m, t)]],
            }
            for m in methods
        }
        for t in TWINS
    }
    show_chart(sanity_figure(curves, methods), key="sanity-live")
    for method in methods:
        for twin in TWINS:
            steps = result[(method, twin)]
            st.markdown(f"**{method} · {twin_label(twin, skips_removed=skips_removed)}**")
            cells = st.columns(len(steps))
            for cell, step in zip(cells, steps):
                cell.image(
                    thumbnail(image, for_display(step.map, pixel_method=not A.METHODS[method].layered), alpha),
                    caption=(_("original") if step.layer == "original" else step.layer) + f" · ρ {step.spearman:.2f}",
                    width="stretch",
                    alt=heatmap_text(step.map),
                )
