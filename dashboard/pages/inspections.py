"""Inspections: filter and page through every verdict; open one to see the image, where the
model looked, its per-class scores and the manual's words for the defect."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.heatmap import overlay
from inspector.manual import parse_manual
from inspector.services import set_golden
from inspector.store.queries import InspectionFilter, inspection_detail, list_inspections, streams

account = data.user()
st.header("Inspections")
known = data.query(streams)
with st.expander("Filters", expanded=True):
    c = st.columns(4)
    product = c[0].selectbox("Product", ["all", *known.products])
    line = c[1].selectbox("Line", ["all", *known.lines])
    verdict = c[2].selectbox("Verdict", ["all", "accept", "review", "reject", "error"])
    reviewed = c[3].selectbox("Reviewed", ["either", "yes", "no"])
    c = st.columns(4)
    defect_type = c[0].text_input("Defect type")
    conf = c[1].slider("Confidence", 0.0, 1.0, (0.0, 1.0), 0.05)
    today = datetime.now(UTC).date()
    start = c[2].date_input("From", today - timedelta(days=7))
    end = c[3].date_input("To (inclusive)", today)
flt = InspectionFilter(
    product=None if product == "all" else product,
    line=None if line == "all" else line,
    verdict=None if verdict == "all" else verdict,
    defect_type=defect_type.strip() or None,
    min_confidence=conf[0] if conf[0] > 0 else None,
    max_confidence=conf[1] if conf[1] < 1 else None,
    since=datetime.combine(start, time(), UTC),
    until=datetime.combine(end + timedelta(days=1), time(), UTC),
    reviewed=None if reviewed == "either" else reviewed == "yes",
)
page_size = 50
page_no = st.number_input("Page", min_value=1, value=1, step=1) - 1
page = data.query(list_inspections, flt, page=page_no, page_size=page_size)
st.caption(f"{page.total:,} inspections match; page {page_no + 1} of {max(1, -(-page.total // page_size))}")
if page.rows:
    table = pd.DataFrame(page.rows)[
        ["id", "captured_at", "product_id", "line", "verdict", "defect_type", "confidence", "defect_score"]
    ]
    st.dataframe(data.readable(table), hide_index=True, width="stretch")

st.subheader("Detail")
chosen = st.number_input("Inspection id", min_value=0, value=page.rows[0].id if page.rows else 0, step=1)
detail = data.query(inspection_detail, int(chosen)) if chosen else None
if chosen and detail is None:
    st.warning(f"Inspection {chosen} does not exist.")
elif detail:
    left, right = st.columns([3, 2])
    with left:
        raw = data.image_bytes(detail)
        if raw is None:
            st.info("The image file is no longer kept (retention) or was never stored; the verdict stays.")
        else:
            has_map = detail.anomaly_map is not None
            label = "Where the part differs from good parts" if has_map else "Where the model looked"
            show_map = st.toggle(label, value=has_map or detail.attention is not None)
            heat = overlay(raw, detail.attention, anomaly_map=detail.anomaly_map)
            st.image(heat if show_map else raw, width="stretch")
    with right:
        st.markdown(
            f"**{detail.verdict.upper()}** {detail.defect_type or ''} · confidence "
            f"{detail.confidence if detail.confidence is not None else '–'} · "
            f"{detail.product_id} on {detail.line or '–'} at {detail.captured_at:%Y-%m-%d %H:%M:%S}"
        )
        if detail.error:
            st.error(detail.error)
        if detail.late:
            st.warning(
                "Late: the PLC's inspect window passed before this verdict, so the line rejected the part "
                "fail-safe (result code 101). The verdict above is the model's, stored when it came."
            )
        if detail.class_scores:
            st.bar_chart(pd.Series(detail.class_scores, name="probability"))
        if detail.defect_type and detail.manual_text:
            try:
                section = parse_manual(detail.manual_text, "manual", detail.product_id).defects.get(detail.defect_type)
            except Exception:  # noqa: BLE001 - an unparsable old manual still shows the verdict
                section = None
            if section:
                st.markdown(f"**Manual (version {detail.manual_version}): {section.name}**")
                st.markdown(section.text)
        if account.role == "engineer":
            golden = st.checkbox(
                "In the golden set",
                help="Every new model is checked against the golden set; a part needs a review as its label.",
                value=detail.golden,
                key=f"golden_{detail.id}",
                disabled=not detail.reviews and not detail.golden,
            )
            if golden != detail.golden and data.act(set_golden, account, detail.id, golden, success="Saved"):
                st.rerun()
        for r in detail.reviews:
            st.caption(f"review by {r.reviewer} at {r.created_at:%Y-%m-%d %H:%M}: {r.label} {r.defect_type or ''}")
