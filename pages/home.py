"""Home: what residual learning is, and what each page shows."""
import streamlit as st

from pages import route_through_app

route_through_app()

st.title("ResNet twins")
st.markdown(
    "Deep networks got much deeper in 2015 thanks to one small change: the **skip connection**. "
    "A residual block does not learn its output directly; it learns a correction **F(x)** that is "
    "*added* to its input: **y = F(x) + x**. This app runs a ResNet next to its **plain twin**: the same "
    "layers with the same initial weights, the additions removed, so every difference you see comes from "
    "the skips alone."
)

RESIDUAL = """digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#e8f1fa", fontname=Helvetica];
x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; c2 [label="conv + BN"];
add [label="+", shape=circle, fillcolor="#1f77b4", fontcolor=white]; a2 [label="ReLU"]; y [label="y = F(x) + x", shape=plaintext, fillcolor=white];
x -> c1 -> a1 -> c2 -> add; x -> add [label="  identity x", color="#1f77b4", penwidth=2.5, fontcolor="#1f77b4"];
add -> a2 -> y; }"""
PLAIN = """digraph { rankdir=TB; node [shape=box, style="rounded,filled", fillcolor="#fff1e3", fontname=Helvetica];
x [label="x", shape=plaintext, fillcolor=white]; c1 [label="conv + BN"]; a1 [label="ReLU"]; c2 [label="conv + BN"];
a2 [label="ReLU"]; y [label="y = F(x)", shape=plaintext, fillcolor=white];
x -> c1 -> a1 -> c2 -> a2 -> y; }"""

left, right = st.columns(2)
with left:
    st.subheader("Residual block")
    st.graphviz_chart(RESIDUAL)
    st.caption("The block only has to learn the *change* F(x). If the best thing is to do nothing, "
               "F(x) = 0 is easy to reach, and the signal and its gradient always have a clean path.")
with right:
    st.subheader("Plain block (the twin)")
    st.graphviz_chart(PLAIN)
    st.caption("The same layers without the addition. Each block must learn the whole mapping; "
               "a deep stack of them is harder to optimise.")

st.subheader("What each page shows")
st.markdown(
    "- **Explain**: Grad-CAM heatmaps for your own photo or a sample: where each twin looks when it decides.\n"
    "- **Gradient flow**: how large the gradient is at every layer, from the output back to the input. "
    "Vanishing and exploding gradients, and why block design matters.\n"
    "- **Residual vs identity**: per block, how much F(x) changes the signal compared with x, and what "
    "happens when a block is deleted (a ResNet behaves like an ensemble of shallower paths).\n"
    "- **Training race**: train ResNets and plain nets of two depths live and watch the *degradation "
    "problem* of He et al. (2015): the deeper plain net trains **worse** than the shallower one, the deeper "
    "ResNet does not."
)
st.info(
    "**A subtlety worth teaching.** With BatchNorm, the degradation problem is *not* caused by vanishing "
    "gradients: He et al. checked that their plain nets' gradients have healthy norms. Deep plain nets are "
    "simply harder to optimise. Vanishing gradients do appear without normalisation and with saturating "
    "activations (try the presets on *Gradient flow*).",
    icon=":material/lightbulb:",
)
st.caption("He, Zhang, Ren, Sun. *Deep Residual Learning for Image Recognition* (2015) and *Identity "
           "Mappings in Deep Residual Networks* (2016). Veit, Wilber, Belongie. *Residual Networks Behave Like "
           "Ensembles of Relatively Shallow Networks* (2016). Selvaraju et al. *Grad-CAM* (2017).")
