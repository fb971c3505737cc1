import streamlit as st

st.title("gradient_flow")
st.info("This page is under construction.")
