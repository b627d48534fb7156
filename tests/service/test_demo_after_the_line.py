"""The demo's after-the-line steps on a real station and store: the operator's reviews of every
rejected or review part and of the spot checks, one drift check, one stored retraining decision (what fills the
dashboard's Review, Drift and Retraining pages after `inspector demo`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from inspector.dataset import load_dataset
from inspector.demo import after_the_line, demo_users
from inspector.service.replay import replay, running
from inspector.store import Inspection, Review
from inspector.store.retraining import retrain_runs
from inspector.store.session import session_factory


@pytest.fixture
def service_settings(service_settings):
    service_settings.verdict.spot_check_share = 0.5  # the demo's miniature shift spot-checks many parts
    service_settings.drift.min_window = 10  # the synthetic line is shorter than the demo's 40 parts per product
    return service_settings


@pytest.mark.slow
def test_after_the_line_reviews_checks_drift_and_decides_a_retrain(service, service_settings, synthetic_root, capsys):
    service_settings.train.epochs = 5  # the challenger's quality is not under test, its decision is
    test = load_dataset(synthetic_root).split("test")
    parts = [("washer", s.path) for s in test]
    truth = {s.path: s.defect_type for s in test}
    with running(service) as url:
        answers = replay(url, parts, rate=50, line="demo")
    sessions = session_factory(service.db_engine)
    with sessions() as s:
        demo_users(s)
        s.commit()
    answered = [(path, a) for (_, path), a in zip(parts, answers, strict=True)]
    after_the_line(service_settings, sessions, answered, truth)
    out = capsys.readouterr().out

    flagged = {a["inspection_id"]: truth[p] for p, a in answered if a["verdict"] in ("review", "reject")}
    assert flagged, "the synthetic line must reject something for the operator to review"
    with sessions() as s:
        spot = set(s.scalars(select(Inspection.uuid).where(Inspection.spot_check)))
    checked = {a["inspection_id"]: truth[p] for p, a in answered if a["inspection_id"] in spot}
    assert checked and all(a["verdict"] == "accept" for _, a in answered if a["inspection_id"] in spot)
    flagged_only = len(flagged)
    flagged |= checked
    with sessions() as s:
        rows = s.execute(select(Inspection.uuid, Review).join(Review, Review.inspection_id == Inspection.id)).all()
        reviewed = {u: r.defect_type for u, r in rows}
        labels = {u: r.label for u, r in rows}
        runs = retrain_runs(s)
    assert len(rows) == len(flagged) and set(reviewed) == set(flagged)  # every flagged part, once
    assert all(labels[u] == ("ok" if t == "ok" else "defect") for u, t in flagged.items())
    assert all(reviewed[u] == (None if t == "ok" else t) for u, t in flagged.items())
    assert f"operator reviews: {flagged_only} parts the line rejected or sent to review, and {len(checked)} spot" in out
    assert "drift check:" in out
    assert "/demo: good parts rejected >= " in out and "reviewed rejects were good; promised 1%)" in out
    assert "/demo: defects shipped ~ " in out and "spot checks defective; the test split's model accepted" in out
    assert len(runs) == 1 and runs[0].trigger == f"demo: {len(flagged)} operator reviews"
    assert runs[0].status in ("finished", "failed") and runs[0].reason
    assert "retraining" in out or "challenger #" in out
