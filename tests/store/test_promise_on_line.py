"""The false-reject promise checked on the line: rejects the operators found good, counted in the
store (SQLite and PostgreSQL) and graded by the drift check against what chance allows."""

from __future__ import annotations

import copy
from datetime import timedelta

from sqlalchemy import select

from inspector.drift import promise_on_line, run_drift_check
from inspector.settings import DriftSettings
from inspector.store.base import utcnow
from inspector.store.inspections import Inspection
from inspector.store.monitoring import RejectReviews, reject_reviews
from inspector.store.promise import PromiseBasis
from inspector.store.repo import add_review, ensure_product, promote_model, record_inspections, register_model
from models.card import ThresholdBasis, ThresholdSetter, parse_card
from tests.models.test_card import FORMAT_1

CFG = DriftSettings(window=100, min_window=30, baseline=200, min_baseline=50, permutations=1000)


def _promise(guaranteed: bool = True) -> PromiseBasis:
    return PromiseBasis("washer", 0.6, 0.01, guaranteed, 120, (), None, None, None)


def test_only_confirmed_false_rejects_count_and_chance_is_allowed_for():
    broken = RejectReviews(judged=2000, rejected=160, reviewed_rejects=140, false_rejects=130, confirmed_defects=10)
    f = promise_on_line(broken, _promise(), CFG)
    assert f.metric == "false_reject_promise" and f.severity == "high"
    assert f.value == 130 / 1990 and f.threshold == 0.01 and f.details["p"] < 0.001
    # 2 % on 2,000 parts: more than the target, yet a threshold set on 120 good parts lands there by chance
    above = promise_on_line(RejectReviews(2000, 50, 45, 40, 5), _promise(), CFG)
    assert above.severity == "warn" and above.details["p_above_target"] < 0.01 < above.details["p"]
    assert promise_on_line(RejectReviews(2000, 30, 25, 20, 5), _promise(), CFG).severity == "ok"  # the target
    assert promise_on_line(RejectReviews(2000, 40, 0, 0, 0), _promise(), CFG) is None  # nothing looked at
    assert promise_on_line(RejectReviews(20, 10, 10, 10, 0), _promise(), CFG) is None  # too few parts
    unpromised = promise_on_line(broken, _promise(guaranteed=False), CFG)
    assert unpromised.severity == "ok" and unpromised.value == 130 / 1990  # measured, no promise to break


def _champion(s) -> int:
    card = parse_card(copy.deepcopy(FORMAT_1))
    card.products["washer"].decision.basis = ThresholdBasis(
        set_by=[ThresholdSetter(image="/data/ok/w7.png", part="w7", score=0.61)]
    )
    mv = register_model(s, "m@1", "/models/not-here", card.summary())
    promote_model(s, mv.id, "test")
    return mv.id


def _line(s, line: str, model_id: int, n: int, rejects: int) -> list[int]:
    """n parts of the last hours on ``line``, the first ``rejects`` rejected -> their ids, in order."""
    start = utcnow() - timedelta(hours=3)
    rows = [
        {
            "uuid": f"{line}-{i}",
            "captured_at": start + timedelta(seconds=5 * i),
            "line": line,
            "product_id": "washer",
            "verdict": "reject" if i < rejects else "accept",
            "defect_type": "scratch" if i < rejects else None,
            "confidence": 0.9,
            "model_version_id": model_id,
        }
        for i in range(n)
    ]
    record_inspections(s, rows)
    ids = s.scalars(select(Inspection.id).where(Inspection.line == line).order_by(Inspection.captured_at))
    return list(ids)


def test_the_drift_check_says_where_the_promise_broke_on_the_line(Session):
    with Session() as s:
        ensure_product(s, "washer")
        model_id = _champion(s)
        bad = _line(s, "L1", model_id, 2000, 160)
        fine = _line(s, "L2", model_id, 2000, 40)
        for i in bad[:130]:
            add_review(s, i, "ann", "ok")
        for i in bad[130:140]:
            add_review(s, i, "ann", "defect", "scratch")
        add_review(s, bad[130], "bob", "ok")  # the latest review wins: one more false reject
        add_review(s, bad[1500], "ann", "defect", "scratch")  # an escape the audit found
        for i in fine[:3]:
            add_review(s, i, "ann", "ok")
        s.commit()
        since = utcnow() - timedelta(days=1)
        assert reject_reviews(s, "washer", "L1", model_id, since) == RejectReviews(2000, 160, 140, 131, 10)
        assert reject_reviews(s, "washer", "L1", model_id + 1, since) == RejectReviews(0, 0, 0, 0, 0)
        events = {e["line"]: e for e in run_drift_check(s, CFG) if e["metric"] == "false_reject_promise"}
    assert events["L1"]["severity"] == "high" and events["L1"]["value"] == 131 / 1990
    assert events["L1"]["details"]["reviewed_rejects"] == 140 and events["L1"]["details"]["promised"] == 0.01
    assert events["L2"]["severity"] == "ok" and events["L2"]["value"] == 3 / 2000
