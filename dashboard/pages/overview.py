"""Overview: how the line is doing. Inspected, yield (accepted), reject rate, share sent to review,
hourly trend, defect-type Pareto and the latest rejects. Refreshes itself every 30 s."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from inspector.store.queries import InspectionFilter, defect_pareto, list_inspections, rates

data.user()
st.header("Overview")
period, product, line = data.filters_bar("overview")


@data.cached(ttl=10)
def _rates(s, flt, bucket):
    return rates(s, bucket, flt)


@data.cached(ttl=10)
def _pareto(s, flt):
    return defect_pareto(s, flt)


@data.cached(ttl=10)
def _latest_defects(s, flt):
    return list_inspections(s, flt, page_size=8).rows


@st.fragment(run_every=30)
def live() -> None:
    flt = InspectionFilter(product=product, line=line, since=data.since(period))
    hourly = _rates(flt, "hour")
    n = sum(h["n"] for h in hourly)
    if n == 0:
        st.info("No inspections in this period yet. Verdicts appear here as the station stores them.")
        return
    totals = {k: sum(h[k] for h in hourly) for k in ("accept", "review", "reject", "error")}
    judged = n - totals["error"]
    c = st.columns(4)
    c[0].metric("Inspected", f"{n:,}")
    c[1].metric("Yield (accepted)", f"{totals['accept'] / judged:.1%}" if judged else "–")
    c[2].metric("Rejected", f"{totals['reject'] / judged:.1%}" if judged else "–")
    c[3].metric("Sent to review", f"{totals['review'] / n:.1%}")
    st.subheader("Per hour")
    trend = pd.DataFrame(hourly).set_index("bucket")[["accept", "reject", "review", "error"]]
    st.bar_chart(trend, color=["#2e7d32", "#c62828", "#f9a825", "#616161"])
    left, right = st.columns(2)
    with left:
        st.subheader("Defect types")
        pareto = _pareto(flt)
        if pareto:
            st.bar_chart(pd.DataFrame(pareto, columns=["defect type", "count"]).set_index("defect type"))
        else:
            st.caption("No rejects in this period.")
    with right:
        st.subheader("Latest rejects")
        rows = _latest_defects(InspectionFilter(product=product, line=line, verdict="reject", since=flt.since))
        store = data.images()
        cols = st.columns(4)
        for i, r in enumerate(rows):
            with cols[i % 4]:
                caption = f"#{r.id} {r.defect_type or ''} · {r.captured_at:%H:%M}"
                try:
                    st.image(str(store.thumbnail(r.image_sha256)), caption=caption)
                except Exception:  # noqa: BLE001 - a purged or missing image must not break the page
                    st.caption(f"{caption} (image not kept)")


live()
