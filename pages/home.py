"""Home: what residual learning is, and what each page shows."""

import streamlit as st

from resnet_viz.i18n import _
from resnet_viz.teaching import plain_block_dot, residual_block_dot
from ui.routing import route_through_app

route_through_app()

st.title(_("ResNet twins"))
st.markdown(
    _(
        "Deep networks got much deeper in 2015 thanks to one small change: the **skip connection**. "
        "A residual block does not learn its output directly; it learns a correction **F(x)** that is "
        "*added* to its input: **y = F(x) + x**. This app runs a ResNet next to its **plain twin**: the same "
        "layers with the same initial weights, the additions removed, so every difference you see comes from "
        "the skips alone."
    )
)
st.page_link(
    "pages/lesson.py",
    label=_("Start the lesson: residual learning in a few steps, with questions for the class"),
    icon=":material/school:",
)

left, right = st.columns(2)
with left:
    st.subheader(_("Residual block"))
    st.graphviz_chart(residual_block_dot())
    st.caption(
        _(
            "The block only has to learn the *change* F(x). If the best thing is to do nothing, "
            "F(x) = 0 is easy to reach, and the signal and its gradient always have a clean path."
        )
    )
with right:
    st.subheader(_("Plain block (the twin)"))
    st.graphviz_chart(plain_block_dot())
    st.caption(
        _(
            "The same layers without the addition. Each block must learn the whole mapping; "
            "a deep stack of them is harder to optimise."
        )
    )

st.subheader(_("What each page shows"))
st.markdown(
    _(
        "- **Lesson**: the story of residual learning step by step, for a class: predict, then reveal.\n"
        "- **Explain**: Grad-CAM heatmaps for your own photo or a sample: where each twin looks when it decides.\n"
        "- **Gradient flow**: how large the gradient is at every layer, from the output back to the input. "
        "Vanishing and exploding gradients, and why block design matters.\n"
        "- **Residual vs identity**: per block, how much F(x) changes the signal compared with x, and what "
        "happens when a block is deleted (a ResNet behaves like an ensemble of shallower paths).\n"
        "- **Training race**: train ResNets and plain nets of two depths live and watch the *degradation "
        "problem* of He et al. (2015): the deeper plain net trains **worse** than the shallower one, the deeper "
        "ResNet does not."
    )
)
st.page_link(
    "pages/shattered_gradients.py",
    label=_(
        "Shattered gradients: why a deep plain net trains worse even "
        "when its gradient has a healthy size (Balduzzi et al. 2017)"
    ),
    icon=":material/grain:",
)
st.info(
    _(
        "**A subtlety worth teaching.** With BatchNorm, the degradation problem is *not* caused by vanishing "
        "gradients: He et al. checked that their plain nets' gradients have healthy norms. Deep plain nets are "
        "simply harder to optimise. Vanishing gradients do appear without normalisation and with saturating "
        "activations (try the presets on *Gradient flow*)."
    ),
    icon=":material/lightbulb:",
)
st.caption(
    "He, Zhang, Ren, Sun. *Deep Residual Learning for Image Recognition* (2015) and *Identity "
    "Mappings in Deep Residual Networks* (2016). Veit, Wilber, Belongie. *Residual Networks Behave Like "
    "Ensembles of Relatively Shallow Networks* (2016). Selvaraju et al. *Grad-CAM* (2017)."
)
