"""Products: manual versions and their differences; engineers edit a manual (a new version,
never an edit in place) or onboard a new product by its manual alone."""

from __future__ import annotations

import difflib

import streamlit as st

from dashboard import data
from inspector.services import onboard_product, save_manual
from inspector.store.queries import products_overview

account = data.user()
st.header("Products")
products = data.query(products_overview)
if not products:
    st.info("No products yet: they appear with the first verdict, or onboard one below.")
for p in products:
    manuals = p.manuals
    with st.expander(f"{p.id} · {p.name} · {len(manuals)} manual version(s)"):
        if not manuals:
            st.warning("No manual: this product gets image-only verdicts.")
            continue
        latest = manuals[0]
        st.caption(f"version {latest.version} by {latest.author} at {latest.created_at:%Y-%m-%d %H:%M}")
        if len(manuals) > 1:
            versions = [m.version for m in manuals]
            c1, c2 = st.columns(2)
            a = c1.selectbox("Compare version", versions[1:], key=f"a_{p.id}")
            b = c2.selectbox("with version", versions, key=f"b_{p.id}")
            old = next(m.text for m in manuals if m.version == a)
            new = next(m.text for m in manuals if m.version == b)
            diff = "\n".join(difflib.unified_diff(old.splitlines(), new.splitlines(), f"v{a}", f"v{b}", lineterm=""))
            st.code(diff or "(identical)", language="diff")
        if account.role == "engineer":
            text = st.text_area("Manual", latest.text, height=300, key=f"edit_{p.id}")
            if st.button("Save as a new version", key=f"save_{p.id}") and text != latest.text:
                version = data.act(save_manual, account, p.id, text, success="Saved")
                if version:
                    st.rerun()
        else:
            st.markdown(latest.text)

st.subheader("Onboard a product")
if data.engineer_only(account):
    with st.form("onboard"):
        pid = st.text_input("Product id (letters, digits, - and _)")
        name = st.text_input("Name")
        text = st.text_area("Manual (front matter, ## Good part, ## Defects with ### sections)", height=250)
        if st.form_submit_button("Onboard") and pid and text:
            if data.act(onboard_product, account, pid.strip(), name.strip() or pid.strip(), text, success="Onboarded"):
                st.rerun()
