"""Streamlit helpers shared by the pages (the pages themselves are in pages/)."""
