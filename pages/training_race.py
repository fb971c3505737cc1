import streamlit as st

st.title("training_race")
st.info("This page is under construction.")
