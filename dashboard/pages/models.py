"""Retraining and models: the schedule, run history with champion and challenger side by side,
and (engineers) retrain now, promote, roll back, and correct the label of a part a threshold
stands on. Every action is in the audit log."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data
from inspector.corrections import correction_for
from inspector.report import percent
from inspector.scheduler import scheduled_jobs
from inspector.services import correct_label, promote, request_retrain, rollback
from inspector.store.monitoring import drift_events
from inspector.store.promise import PromiseBasis, Setter, promise_basis
from inspector.store.queries import model_history
from inspector.store.retraining import retrain_runs
from inspector.store.rows import DriftEventRow

account = data.user()
st.header("Retraining & models")

models = data.query(model_history)
champion = next((m for m in models if m.status == "champion"), None)
st.metric("Champion", champion.name if champion else "none yet")


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def held_out(metrics: dict) -> pd.DataFrame | None:
    """The champion's own numbers on its held-out test split, as a quality engineer reads them."""
    test = (metrics or {}).get("test") or {}
    rows = [
        {
            "Product": product,
            "Defects passed (escape)": _pct(m.get("escape_rate")),
            "False rejects: measured / promised": f"{_pct(m.get('false_reject_rate'))} / {_pct(m.get('target_frr'))}",
            "Most chance allows": _pct(m.get("frr_bound")),
            "AUROC": "–" if m.get("auroc") is None else f"{m['auroc']:.3f}",
            "Defect-type F1": "–" if m.get("defect_type_macro_f1") is None else f"{m['defect_type_macro_f1']:.2f}",
            "Test parts": m.get("n"),
        }
        for product, m in test.items()
        if isinstance(m, dict)
    ]
    return pd.DataFrame(rows) if rows else None


if champion:
    table = held_out(champion.metrics)
    if table is not None:
        st.caption("The champion on its held-out test split (thresholds from its calibration split):")
        st.dataframe(table, hide_index=True)
    else:
        st.caption("No held-out test numbers were stored with the champion.")


FALSE_REJECTS, ESCAPES = "False rejects (reviewed rejects found good)", "Defects shipped (spot checks)"
SAID = {
    "false_reject_promise": {"ok": "holds", "warn": "above target, within chance", "high": "broken beyond chance"},
    "escape_on_line": {"ok": "as tested", "warn": "above the test split's", "high": "far above the test split's"},
}


def _said(e: DriftEventRow) -> str:
    d, judged = e.details, SAID[e.metric].get(e.severity, e.severity)
    if e.metric == "false_reject_promise":
        seen = f"{d['false_rejects']} of {d['reviewed_rejects']} reviewed, {d['judged']:,} parts"
        return f"≥ {_pct(e.value)} ({seen}): {judged}"
    tested = f"test split: {_pct(d['test_escape'])} accepted"
    seen = f"{d['shipped_defects']} of {d['reviewed_spot_checks']} defective; {tested}"
    return f"≈ {_pct(e.value)} ({seen}): {judged}"


def on_the_line(events: list[DriftEventRow], model: str) -> pd.DataFrame | None:
    """Per product and line, what the newest drift check found of the model's promise (the floor
    the reviews of rejects put under its false-reject rate) and of its escape rate (from the
    spot checks, against the share of test defects it accepted)."""
    newest: dict[tuple[str, str], dict[str, DriftEventRow]] = {}
    for e in events:  # newest first
        if e.metric in SAID and (e.details or {}).get("model") == model:
            newest.setdefault((e.product_id, e.line), {}).setdefault(e.metric, e)
    rows = [
        {
            "Product": product,
            "Line": line or "–",
            FALSE_REJECTS: _said(m["false_reject_promise"])
            if "false_reject_promise" in m
            else "no reviewed reject yet",
            ESCAPES: _said(m["escape_on_line"]) if "escape_on_line" in m else "no reviewed spot check yet",
        }
        for (product, line), m in sorted(newest.items())
    ]
    return pd.DataFrame(rows) if rows else None


def promise_table(bases: list[PromiseBasis]) -> pd.DataFrame:
    """Per product, the good calibration parts the reject threshold stands on, and what a review
    that found them defective would change (relabel them and retrain to get it)."""
    rows = []
    for b in bases:
        promise = percent(b.target_frr) if b.guaranteed else "none: too few"
        then = "–" if b.val_escape is None or b.val_escape_without is None else _pct(b.val_escape_without)
        rows.append(
            {
                "Product": b.product,
                "Reject above": f"{b.reject:.2f}",
                "Promise (good parts calibrated on)": f"{promise} ({b.calibration_parts})",
                "Set by (good-labelled part, score)": ", ".join(f"{s.part} ({s.score:.2f})" for s in b.set_by),
                "Reject above without them": "–" if b.reject_without is None else f"{b.reject_without:.2f}",
                "Val escape: now / without": f"{_pct(b.val_escape)} / {then}",
            }
        )
    return pd.DataFrame(rows)


def stands_on(b: PromiseBasis, whose: str) -> str:
    """One line: the good parts a model's reject threshold for a product stands on."""
    promise = f"its {percent(b.target_frr)} promise" if b.guaranteed else "no promise (too few good parts)"
    parts = ", ".join(f"{s.part} ({s.score:.2f})" for s in b.set_by)
    return f"{whose} {b.product} threshold ({promise}, {b.calibration_parts} good parts) is set by {parts}"


def setter(b: PromiseBasis, s: Setter, key: str) -> None:
    """One good-labelled part that sets the threshold: its image, and for an engineer who finds it
    defective, the correction the next training or retraining learns from."""
    raw = data.training_image(s.image)
    if raw is None:
        st.caption(f"{s.image} (score {s.score:.2f}): not on this machine")
        return
    st.image(raw, caption=f"{s.part} · {s.image} · score {s.score:.2f}", width=240)
    fixed = correction_for(Path(s.image))
    if fixed is not None:
        st.caption(f"Corrected to **{fixed.defect_type}** by {fixed.reviewer} at {fixed.created_at}.")
    if account.role != "engineer" or not b.defect_types:
        return
    c1, c2 = st.columns([2, 1])
    kind = c1.selectbox("It is in fact", ["ok", *b.defect_types], key=f"kind_{key}")
    if c2.button("Save the label", key=f"fix_{key}", disabled=kind == (fixed.defect_type if fixed else "ok")):
        done = data.act(correct_label, account, s.image, kind, success=f"Saved: {s.part} is {kind}.")
        if done:
            st.caption("The next training or retraining on this data learns it (and the threshold it sets).")


if champion:
    st.subheader("On the line")
    line = on_the_line(data.query(drift_events, metric=list(SAID), limit=1000), champion.name)
    if line is None:
        st.caption(
            "No drift check has seen a reviewed reject or spot check of the champion yet. The review queue "
            "shows spot checks (accepted parts picked at random) after the parts sent to review."
        )
    else:
        st.caption(
            "The champion's promise and escape rate measured again on each line's own parts (newest drift check): "
            "rejects the operators found good, and spot checks (accepted parts picked at random) they found "
            "defective (docs/drift.md)."
        )
        st.dataframe(line, hide_index=True)

if champion:
    bases = data.query(promise_basis, champion.id)
    st.subheader("What the promise stands on")
    if not bases:
        st.caption("The champion's stored card names no threshold basis (registered by an older version).")
    else:
        st.caption(
            "Each reject threshold is set by the highest-scoring good parts of its calibration split. "
            "Look at them: a part that is in fact defective raises the threshold for every part, "
            "so relabel it (engineers: below) and retrain."
        )
        st.dataframe(promise_table(bases), hide_index=True)
        for b in bases:
            with st.expander(f"{b.product}: the parts that set reject above {b.reject:.2f}"):
                for i, s in enumerate(b.set_by):
                    setter(b, s, f"{b.product}_{i}")

st.subheader("Schedule")
try:
    jobs = scheduled_jobs(data.settings())
except Exception as exc:  # noqa: BLE001 - the schedule is informative; the page goes on without it
    jobs, _ = [], st.caption(f"Schedule unavailable: {type(exc).__name__}")
if jobs:
    st.dataframe(data.readable(pd.DataFrame(jobs)), hide_index=True)
else:
    st.caption("No jobs stored: start the scheduler with `inspector scheduler`.")

st.subheader("Runs")
runs = data.query(retrain_runs, 50)
if not runs:
    st.caption("No retraining run yet.")
for r in runs:
    title = f"#{r.id} {r.started_at:%Y-%m-%d %H:%M} · {r.trigger} · {r.status} · {r.decision or ''}"
    with st.expander(title, expanded=r is runs[0]):
        if r.reason:
            st.write(r.reason)
        rows = []
        for which in ("golden", "recent"):
            for product, m in (r.champion_metrics or {}).get(which, {}).items():
                new = (r.challenger_metrics or {}).get(which, {}).get(product, {})
                rows.append(
                    {
                        "set": which,
                        "product": product,
                        "n": m["n"],
                        "champion": m["score"],
                        "challenger": new.get("score"),
                    }
                )
        if rows:
            st.dataframe(data.readable(pd.DataFrame(rows)), hide_index=True)
        if r.challenger_id is not None:
            for b in data.query(promise_basis, r.challenger_id):
                st.caption(stands_on(b, "The challenger's"))
        st.caption(f"data: {r.data_counts} · {r.duration_s or 0:.0f} s")

st.subheader("Versions")
if models:
    versions = pd.DataFrame(models)[["id", "name", "status", "created_at", "promoted_at"]]
    st.dataframe(data.readable(versions), hide_index=True)

st.subheader("Actions")
if data.engineer_only(account):
    c1, c2, c3 = st.columns(3)
    with c1:
        if st.button("Retrain now", key="retrain_now"):
            try:
                request_retrain(data.settings(), account)
                st.success("Retraining started; its run appears above when it finishes.")
            except Exception as exc:  # noqa: BLE001
                st.error(str(exc))
    with c2:
        candidates = [m for m in models if m.status != "champion"]
        pick = st.selectbox(
            "Model to promote", [m.id for m in candidates], format_func=lambda i: f"#{i}", key="promote_pick"
        )
        sure = st.checkbox("I checked its metrics", key="confirm_promote")
        if st.button("Promote", key="promote", disabled=not (pick and sure)):
            if data.act(promote, account, pick, success="Promoted"):
                st.rerun()
    with c3:
        sure_rb = st.checkbox("Roll back to the previous champion", key="confirm_rollback")
        if st.button("Roll back", key="rollback", disabled=not sure_rb):
            if data.act(rollback, account, success="Rolled back"):
                st.rerun()
