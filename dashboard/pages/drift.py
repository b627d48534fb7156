"""Drift: each metric of each checked stream over time against its threshold, the alarms, and
the retraining runs they triggered."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from inspector.store.monitoring import drift_events
from inspector.store.retraining import retrain_runs

# what the page shows: not an event's details, which asdict would deep-copy for up to 20,000 rows a minute
COLUMNS = ("created_at", "product_id", "line", "metric", "value", "threshold", "severity", "window_start", "window_end")

data.user()
st.header("Drift")
period, product, line = data.filters_bar("drift")


@data.cached(ttl=30)
def _events(s, product, line, since):
    return drift_events(s, product=product, line=line, since=since, limit=20_000)


@st.fragment(run_every=60)
def live() -> None:
    events = _events(product, line, data.since(period))
    if not events:
        st.info("No drift checks in this period. The scheduler checks every 15 minutes (`inspector scheduler`).")
        return
    df = pd.DataFrame({c: [getattr(e, c) for e in events] for c in COLUMNS})
    df["stream"] = df["product_id"].fillna("") + " / " + df["line"].fillna("")
    alarms = df[df["severity"] != "ok"]
    c = st.columns(3)
    c[0].metric("Checks", f"{len(df):,}")
    c[1].metric("Warnings", int((df["severity"] == "warn").sum()))
    c[2].metric("High", int((df["severity"] == "high").sum()))
    for metric in sorted(df["metric"].unique()):
        sub = df[df["metric"] == metric].sort_values("created_at")
        st.subheader(metric)
        chart = sub.pivot_table(index="created_at", columns="stream", values="value", aggfunc="last")
        chart["threshold"] = sub.groupby("created_at")["threshold"].last()
        st.line_chart(chart)
    st.subheader("Alarms")
    if alarms.empty:
        st.caption("None: every check stayed under its threshold.")
    else:
        shown = ["created_at", "stream", "metric", "value", "threshold", "severity", "window_start", "window_end"]
        st.dataframe(
            data.readable(alarms[shown]),
            hide_index=True,
            width="stretch",
        )
    st.subheader("Retraining triggered by drift")
    runs = [r for r in data.query(retrain_runs, 50) if r.trigger.startswith("drift")]
    if runs:
        runs = pd.DataFrame(runs)[["started_at", "trigger", "status", "decision", "reason"]]
        st.dataframe(data.readable(runs), hide_index=True)
    else:
        st.caption("No run was triggered by drift.")


live()
