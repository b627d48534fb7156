from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from inspector.store import AuditEntry, Inspection, ModelVersion, Review
from inspector.store.queries import latest_reviews
from inspector.store.repo import (
    InvalidRecordError,
    add_manual_version,
    add_review,
    count_inspections,
    ensure_product,
    promote_model,
    record_inspections,
    register_model,
)
from tests.helpers.factories import inspection_rows


def seed(Session, n=30):
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        record_inspections(s, inspection_rows(n))
        s.commit()


def test_batch_insert_round_trips_with_utc_times(Session):
    seed(Session, 30)
    with Session() as s:
        assert count_inspections(s) == 30
        row = s.scalars(select(Inspection).order_by(Inspection.id)).first()
        assert row.captured_at == datetime(2026, 11, 2, tzinfo=UTC) and row.captured_at.tzinfo is not None
        assert row.golden is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"product_id": "gear"}, r"unknown product\(s\) \['gear'\]"),
        ({"verdict": "maybe"}, "verdict"),
        ({"line": "x" * 65}, "line"),
        ({"confidence": 1.5}, "confidence"),
        ({"image_sha256": "not-a-hash"}, "image_sha256"),
        ({"captured_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_records_are_refused_with_a_clear_error_and_nothing_written(Session, change, message):
    seed(Session, 0)
    good, bad = inspection_rows(2)
    bad.update(change)
    with Session() as s, pytest.raises(InvalidRecordError, match=message):
        record_inspections(s, [good, bad])
    with Session() as s:
        assert count_inspections(s) == 0


def test_manual_versions_are_appended_never_edited(Session):
    with Session() as s:
        v1 = add_manual_version(s, "tile", "# Tile v1", "anna")
        same = add_manual_version(s, "tile", "# Tile v1", "anna")
        v2 = add_manual_version(s, "tile", "# Tile v2", "ben")
        s.commit()
        assert (v1.version, same.id, v2.version) == (1, v1.id, 2)
        assert [a.action for a in s.scalars(select(AuditEntry))] == ["manual_edit", "manual_edit"]


def test_reviews_latest_wins_and_bad_reviews_refused(Session):
    seed(Session, 5)
    with Session() as s:
        first = s.scalars(select(Inspection.id).order_by(Inspection.id)).first()
        add_review(s, first, "anna", "defect", "crack")
        add_review(s, first, "ben", "ok", comment="just dust")
        s.commit()
        [row] = latest_reviews(s)
        assert (row.part.id, row.review.label, row.review.reviewer) == (first, "ok", "ben")
        # the part carries its latest review's time: the review queue's indexes leave it out
        latest = s.scalars(select(Review.created_at).where(Review.reviewer == "ben")).one()
        assert s.get(Inspection, first).reviewed_at == latest
        assert s.scalars(select(Inspection.reviewed_at).where(Inspection.id != first)).all() == [None] * 4
        with pytest.raises(InvalidRecordError, match="cannot name a defect"):
            add_review(s, first, "anna", "ok", "crack")
        with pytest.raises(InvalidRecordError, match="does not exist"):
            add_review(s, 10**9, "anna", "ok")


def test_promotion_retires_the_previous_champion_and_is_audited(Session):
    with Session() as s:
        a = register_model(s, "m1", "/models/m1", {"backbone": "x"})
        b = register_model(s, "m2", "/models/m2", {"backbone": "x"})
        promote_model(s, a.id, "eng")
        promote_model(s, b.id, "eng")
        s.commit()
        status = {m.name: m.status for m in s.scalars(select(ModelVersion))}
        assert status == {"m1": "retired", "m2": "champion"}
        assert s.scalar(select(AuditEntry.action).where(AuditEntry.target == f"model:{b.id}")) == "promote"
