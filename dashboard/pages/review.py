"""Review queue: parts the line sent to review first, then spot checks (accepted parts picked at random: the
one measurement of the defects the station ships), then rejected ones. One part at a time, big buttons; every
review is stored with the reviewer's name and can be undone."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.heatmap import overlay
from inspector.manual import parse_manual
from inspector.services import review, undo_review
from inspector.store.queries import inspection_detail, review_queue, streams

account = data.user()
st.header("Review queue")
products = data.query(streams).products
product = st.selectbox("Product", ["all", *products], key="review_product")
queue = data.query(review_queue, 20, None if product == "all" else product)

last = st.session_state.get("last_review")
if last:
    c1, c2 = st.columns([4, 1])
    c1.caption(f"Last review: inspection #{last['inspection']} → {last['label']} {last['defect_type'] or ''}")
    if c2.button("Undo last review", key="undo"):
        if data.act(undo_review, account, last["review"], success="Review undone") is not None:
            st.session_state.pop("last_review", None)
            st.rerun()

if not queue:
    st.success("Nothing to review: every part sent to review, spot-checked or rejected has been reviewed.")
    st.stop()

item = data.query(inspection_detail, queue[0].id)
st.caption(
    f"{len(queue)}{'+' if len(queue) == 20 else ''} waiting · sent to review first, then spot checks (newest first), "
    "then rejected"
)
left, right = st.columns([3, 2])
with left:
    raw = data.image_bytes(item)
    if raw is None:
        st.info("The image file is no longer kept; review from the verdict and the line's records.")
    else:
        st.image(overlay(raw, item.attention, anomaly_map=item.anomaly_map), width="stretch")
        if item.anomaly_map:
            st.caption("red: where the part differs from good parts; full red: beyond good parts at the promised FRR")
with right:
    kind = "SPOT CHECK of an accepted part" if item.spot_check else item.verdict.upper()
    st.markdown(
        f"### #{item.id} · {kind} {item.defect_type or ''}\n"
        f"{item.product_id} · line {item.line or '–'} · {item.captured_at:%Y-%m-%d %H:%M:%S} · "
        f"confidence {item.confidence if item.confidence is not None else '–'}"
    )
    defect_types: list[str] = []
    section_text = None
    if item.manual_text:
        try:
            manual = parse_manual(item.manual_text, "manual", item.product_id)
            defect_types = list(manual.defects)
            if item.defect_type in manual.defects:
                section_text = manual.defects[item.defect_type].text
        except Exception:  # noqa: BLE001 - an unparsable manual must not block reviewing
            pass
    if section_text:
        with st.expander("Manual", expanded=False):
            st.markdown(section_text)
    comment = st.text_input("Comment (optional)", key=f"comment_{item.id}")
    options = defect_types or ([item.defect_type] if item.defect_type else [])
    default = options.index(item.defect_type) if item.defect_type in options else 0
    chosen_type = st.selectbox("Defect type", options, index=default, key=f"type_{item.id}") if options else None

    def save(label: str, defect_type: str | None) -> None:
        rid = data.act(review, account, item.id, label, defect_type, comment, success=f"#{item.id}: {label}")
        if rid is not None:
            st.session_state["last_review"] = {
                "review": rid,
                "inspection": item.id,
                "label": label,
                "defect_type": defect_type,
            }
            st.rerun()

    b1, b2 = st.columns(2)
    if b1.button("✔ Good part (ok)", type="secondary", width="stretch", key="review_ok"):
        save("ok", None)
    if b2.button("✖ Defect", type="primary", width="stretch", key="review_defect"):
        save("defect", chosen_type)
