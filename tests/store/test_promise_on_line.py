"""The promise and the escape rate checked on the line: rejects the operators found good, and
spot checks (accepted parts picked at random) they found defective, counted in the store (SQLite
and PostgreSQL) and graded by the drift check against what chance allows."""

from __future__ import annotations

import copy
from datetime import timedelta

from sqlalchemy import select

from inspector.drift import escape_on_line, promise_on_line, run_drift_check
from inspector.settings import DriftSettings
from inspector.store.base import utcnow
from inspector.store.inspections import Inspection
from inspector.store.monitoring import HeldOutEscape, LineReviews, line_reviews
from inspector.store.promise import PromiseBasis
from inspector.store.repo import add_review, ensure_product, promote_model, record_inspections, register_model
from models.card import ThresholdBasis, ThresholdSetter, parse_card
from tests.models.test_card import FORMAT_1

CFG = DriftSettings(window=100, min_window=30, baseline=200, min_baseline=50, permutations=1000)


def _promise(guaranteed: bool = True) -> PromiseBasis:
    return PromiseBasis("washer", 0.6, 0.01, guaranteed, 120, (), None, None, None)


def _rejects(judged: int, rejected: int, reviewed: int, good: int, defects: int) -> LineReviews:
    return LineReviews(judged, judged - rejected, rejected, reviewed, good, defects)


def test_only_confirmed_false_rejects_count_and_chance_is_allowed_for():
    broken = _rejects(2000, 160, 140, 130, 10)
    f = promise_on_line(broken, _promise(), CFG)
    assert f.metric == "false_reject_promise" and f.severity == "high"
    assert f.value == 130 / 1990 and f.threshold == 0.01 and f.details["p"] < 0.001
    # 2 % on 2,000 parts: more than the target, yet a threshold set on 120 good parts lands there by chance
    above = promise_on_line(_rejects(2000, 50, 45, 40, 5), _promise(), CFG)
    assert above.severity == "warn" and above.details["p_above_target"] < 0.01 < above.details["p"]
    assert promise_on_line(_rejects(2000, 30, 25, 20, 5), _promise(), CFG).severity == "ok"  # the target
    assert promise_on_line(_rejects(2000, 40, 0, 0, 0), _promise(), CFG) is None  # nothing looked at
    assert promise_on_line(_rejects(20, 10, 10, 10, 0), _promise(), CFG) is None  # too few parts
    unpromised = promise_on_line(broken, _promise(guaranteed=False), CFG)
    assert unpromised.severity == "ok" and unpromised.value == 130 / 1990  # measured, no promise to break


def test_spot_checks_measure_the_escape_rate_against_the_test_split():
    def line(reviewed: int, shipped: int) -> LineReviews:
        # 9,500 accepted, 500 rejected of which a tenth of those reviewed were good: 450 defects caught
        return LineReviews(10_000, 9_500, 500, 100, 10, 90, 60, reviewed, shipped)

    tested = HeldOutEscape(0.2, 0)  # no part count recorded: the rate itself is the bar
    leaky = escape_on_line(line(50, 10), tested, CFG)
    assert leaky.metric == "escape_on_line" and leaky.threshold == 0.2 and leaky.severity == "high"
    assert abs(leaky.value - 1900 / (1900 + 450)) < 1e-9  # a fifth of 9,500 shipped parts are defective
    assert (
        escape_on_line(line(50, 0), tested, CFG).severity == "ok"
        and escape_on_line(line(50, 0), tested, CFG).value == 0
    )
    # one defective of 50 spot checks: about what a 20 % escape ships (450 * 0.25 / 9,500 = 1.2 % of parts)
    assert escape_on_line(line(50, 1), tested, CFG).severity == "ok"
    assert escape_on_line(line(0, 0), tested, CFG) is None  # no spot check looked at yet
    held = LineReviews(10_000, 9_500, 400, 100, 10, 90, 60, 50, 10, held_defects=90)  # 360 rejected + 90 held
    assert escape_on_line(held, tested, CFG).value == leaky.value
    # 0 of 20 test defects passed says little: one defective spot check is no alarm, ten are
    none_passed = HeldOutEscape(0.0, 20)
    assert escape_on_line(line(50, 1), none_passed, CFG).severity == "ok"
    assert escape_on_line(line(50, 10), none_passed, CFG).details["test_escape_top"] > 0.16


def _champion(s) -> int:
    card = parse_card(copy.deepcopy(FORMAT_1))
    card.products["washer"].decision.basis = ThresholdBasis(
        set_by=[ThresholdSetter(image="/data/ok/w7.png", part="w7", score=0.61)]
    )
    mv = register_model(
        s,
        "m@1",
        "/models/not-here",
        card.summary(),
        {"test": {"washer": {"escape_rate": 0.12, "escape_to_accept_rate": 0.1, "defect_parts": 40}}},
    )
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
            "spot_check": i >= rejects and i % 50 == 0,
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
        add_review(s, bad[1501], "ann", "defect", "scratch")  # an escape found by chance: not a spot check
        for i in fine[:3]:
            add_review(s, i, "ann", "ok")
        for k, i in enumerate(bad[200::50]):  # 30 of L1's 36 spot checks looked at, 6 found defective
            if k < 30:
                add_review(s, i, "ann", "defect" if k % 5 == 0 else "ok", "scratch" if k % 5 == 0 else None)
        for i in fine[50::50]:  # every spot check of L2 looked at, all good
            add_review(s, i, "ann", "ok")
        s.commit()
        since = utcnow() - timedelta(days=1)
        assert line_reviews(s, "washer", "L1", model_id, since) == LineReviews(2000, 1840, 160, 140, 131, 16, 36, 30, 6)
        assert line_reviews(s, "washer", "L1", model_id + 1, since) == LineReviews(0, 0, 0, 0, 0, 0, 0, 0, 0)
        checked = run_drift_check(s, CFG)
    promise = {e.line: e for e in checked if e.metric == "false_reject_promise"}
    assert promise["L1"].severity == "high" and promise["L1"].value == 131 / 1984
    assert promise["L1"].details["reviewed_rejects"] == 140 and promise["L1"].details["promised"] == 0.01
    assert promise["L2"].severity == "ok" and promise["L2"].value == 3 / 2000
    escape = {e.line: e for e in checked if e.metric == "escape_on_line"}
    assert escape["L1"].severity == "high" and escape["L1"].threshold == 0.1  # the test's accepted share
    assert escape["L1"].details["test_defect_parts"] == 40
    assert escape["L1"].details["shipped_defects"] == 6 and escape["L2"].severity == "ok"
    assert escape["L2"].value == 0 and escape["L2"].details["reviewed_spot_checks"] == 39
