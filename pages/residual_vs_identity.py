import streamlit as st

st.title("residual_vs_identity")
st.info("This page is under construction.")
