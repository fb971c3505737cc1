"""ResNet twins: the router and the shared sidebar.  Run with ``streamlit run app.py``."""
import streamlit as st

from pages.common import checkpoint_sidebar, device_label

st.set_page_config(page_title="ResNet twins", page_icon=":material/hub:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/explain.py", title="Explain", icon=":material/search:"),
    st.Page("pages/gradient_flow.py", title="Gradient flow", icon=":material/trending_down:"),
    st.Page("pages/residual_vs_identity.py", title="Residual vs identity", icon=":material/add_circle:"),
    st.Page("pages/training_race.py", title="Training race", icon=":material/sports_score:"),
    st.Page("pages/loss_landscape.py", title="Loss landscape", icon=":material/landscape:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.caption(f"Running on **{device_label()}**")
    st.caption("A ResNet next to its *plain twin*: the same network, the same initial weights, "
               "the skip connections removed.")
checkpoint_sidebar()
page.run()
