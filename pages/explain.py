"""Explain: Grad-CAM for a ResNet and its plain twin, side by side."""
from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st
from PIL import Image

import resnet_viz as rv
from pages import route_through_app
from pages.common import (available_sources, ensure_imagenet, explain_slots, session_models, source_label,
                          twin_label, twins_for, wait_message)
from resnet_viz.data import TEST_SEED, make_shapes_raw
from resnet_viz.explain_plots import overlay, png_bytes, topk_figure
from resnet_viz.imaging import ACCEPTED_EXTENSIONS, ImageError, load_image

route_through_app()
N_SHAPES_SAMPLES = 200

st.title("Explain")
st.markdown("Where does each twin look when it decides? **Grad-CAM** weighs a layer's feature maps by how "
            "much they raise the chosen class's score and keeps the positive evidence. Warm colours mark "
            "the regions that pushed the prediction up.")


@st.cache_data(show_spinner=False)
def shapes_samples():
    return make_shapes_raw(N_SHAPES_SAMPLES, seed=TEST_SEED)


@st.cache_data(show_spinner=False, max_entries=32)
def decode_upload(data: bytes) -> np.ndarray:
    return np.asarray(load_image(data))


@st.cache_data(show_spinner=False, max_entries=128)
def cached_explain(source: str, twin: str, image_key: str, _image: Image.Image, layer: str,
                   class_ids: tuple[int, ...] | None, model_key: str = "") -> rv.Explanation:
    resnet, plain, _ = twins_for(source)
    model = resnet if twin == "resnet" else plain
    return rv.explain(model, _image, topk=5, layer=layer, class_ids=list(class_ids) if class_ids else None)


def pick_image(source: str):
    """The image to explain, its mask and true label (shapes only), or None."""
    bundled = source.startswith("shapes")
    kinds = ["Shapes sample", "Sample photo", "Upload", "Camera"]
    kind = st.radio("Image", kinds, index=0 if bundled else 1, horizontal=True, key=f"kind-{bundled}")
    if kind == "Shapes sample":
        images, labels, masks = shapes_samples()
        i = st.slider("Sample", 0, N_SHAPES_SAMPLES - 1, 3, help="Test images the bundled twins never saw.")
        return Image.fromarray(images[i]), masks[i], rv.SHAPE_CLASSES[labels[i]]
    if kind == "Sample photo":
        photos = rv.sample_images()
        name = st.selectbox("Photo", list(photos), format_func=str.title)
        return load_image(photos[name].read_bytes()), None, None
    if kind == "Upload":
        upload = st.file_uploader("Upload an image (PNG, JPEG, WebP, BMP or GIF; at most 20 MB)",
                                  type=list(ACCEPTED_EXTENSIONS), max_upload_size=20)
    else:
        upload = st.camera_input("Take a photo")
    if upload is None:
        st.info("Choose a file to see what the twins make of it.", icon=":material/upload:")
        return None
    return Image.fromarray(decode_upload(upload.getvalue())), None, None


options = available_sources()
source = st.selectbox("Model", options, format_func=source_label,
                      help="The bundled twins work offline. ImageNet weights are downloaded once.", key="explain-model")
imagenet = source in ("resnet18", "resnet50")
if imagenet and not ensure_imagenet(source):
    st.stop()
resnet, plain, info = twins_for(source)
skips_removed = imagenet or bool(info.get("plain_is_resnet_without_skips"))

try:
    picked = pick_image(source)
except ImageError as exc:
    st.error(f"This image can't be explained: {exc}", icon=":material/broken_image:")
    st.stop()
if picked is None:
    st.stop()
image, mask, true_label = picked

if source.startswith("shapes") and true_label is None:
    st.warning("The bundled twins know only eight shapes (" + ", ".join(rv.SHAPE_CLASSES) + "), so their "
               "answers on a photo are guesses. Pick an ImageNet model to explain photos.", icon=":material/info:")

c1, c2, c3 = st.columns([1, 1, 1])
layer = c1.selectbox("Stage", resnet.stage_names, index=len(resnet.stage_names) - 1, key="explain-stage",
                     help="Later stages see larger, more semantic regions; earlier stages give finer maps.")
alpha = c3.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key="explain-opacity")

image_key = hashlib.sha1(np.asarray(image).tobytes()).hexdigest()
model_key = session_models().cache_key(source)
status = st.empty()
with explain_slots().hold(on_wait=wait_message(status, "explanations")), st.spinner("Explaining…"):
    top = {twin: cached_explain(source, twin, image_key, image, layer, None, model_key) for twin in ("resnet", "plain")}
status.empty()
candidates = list(dict.fromkeys([*map(int, top["resnet"].indices), *map(int, top["plain"].indices)]))
names = dict(zip(map(int, top["resnet"].indices), top["resnet"].labels)) | \
    dict(zip(map(int, top["plain"].indices), top["plain"].labels))
by_label = {}
for cid in candidates:  # ImageNet repeats a few names ("crane"): keep labels unique
    by_label[names[cid] if names[cid] not in by_label else f"{names[cid]} (#{cid})"] = cid
chosen = by_label[c2.selectbox("Class to explain", list(by_label), key="explain-class",
                               help="Any class in either twin's top 5; both heatmaps explain the same class.")]

if true_label is not None:
    st.caption(f"True class: **{true_label}**. The white outline marks the object.")

columns = st.columns(2)
for column, twin, model in zip(columns, ("resnet", "plain"), (resnet, plain)):
    exp = top[twin]
    if chosen in exp.indices:
        heatmap = exp.heatmaps[list(exp.indices).index(chosen)]
    else:
        with explain_slots().hold():
            heatmap = cached_explain(source, twin, image_key, image, layer, (chosen,), model_key).heatmaps[0]
    with column:
        st.subheader(twin_label(twin, pretrained_imagenet=skips_removed))
        picture = overlay(image, heatmap, alpha=alpha, mask=mask)
        st.image(picture, caption=f"Grad-CAM for '{names[chosen]}' at {layer}", width="stretch", output_format="PNG")
        if heatmap.max() == 0:
            st.caption("No positive evidence for this class at this stage: the map is empty.")
        if mask is not None:
            score = rv.localisation(heatmap, mask)
            m1, m2 = st.columns(2)
            m1.metric("Heat on the object", f"{score['mass_inside']:.0%}",
                      help=f"Share of the heatmap's mass inside the object, which covers "
                           f"{score['object_share']:.0%} of the image. A map that ignored the object would "
                           f"score about that.")
            m2.metric("Peak on the object", "yes" if score["peak_inside"] else "no")
        st.plotly_chart(topk_figure(exp, twin, highlight=chosen), width="stretch", key=f"topk-{twin}")
        st.download_button("Download overlay (PNG)", png_bytes(picture), file_name=f"gradcam-{twin}-{layer}.png",
                           mime="image/png", key=f"dl-{twin}")

with st.expander("How to read this"):
    st.markdown(
        "- Both twins started from the **same weights**; " + (
            "the plain twin here is the trained ResNet with its skip connections removed, so it shows "
            "how much the trained network relies on them (it usually falls apart)." if skips_removed else
            "each was then trained with the same recipe and batches, so differences come from the skips.") +
        "\n- Grad-CAM is computed at the chosen stage (Selvaraju et al. 2017): the gradient of the class score, "
        "averaged over the stage's feature map, weighs each channel. Maps are scaled so their peak is 1; "
        "they show *where* evidence is, not how confident the model is (see the bars)."
        "\n- A heatmap is an explanation of one model on one image, not proof of what it has learned in general."
    )
