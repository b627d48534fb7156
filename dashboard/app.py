"""The dashboard's entry point: login, then the pages the user's role allows.

inspector-dashboard      (or: streamlit run dashboard/app.py)
"""

from __future__ import annotations

import streamlit as st

from dashboard import data

st.set_page_config(page_title="inspector", page_icon=":material/fact_check:", layout="wide")
account = data.user()
with st.sidebar:
    st.caption(f"{account.username} · {account.role}")
    if st.button("Log out"):
        st.session_state.clear()
        st.rerun()

pages = {
    "Line": [
        st.Page("pages/overview.py", title="Overview", icon=":material/monitoring:", default=True),
        st.Page("pages/inspections.py", title="Inspections", icon=":material/search:"),
        st.Page("pages/review.py", title="Review queue", icon=":material/rule:"),
    ],
    "Engineering": [
        st.Page("pages/drift.py", title="Drift", icon=":material/trending_up:"),
        st.Page("pages/models.py", title="Retraining & models", icon=":material/model_training:"),
        st.Page("pages/products.py", title="Products", icon=":material/menu_book:"),
    ],
}
st.navigation(pages).run()
