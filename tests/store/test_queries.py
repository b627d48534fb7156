from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from inspector.store import Inspection
from inspector.store.queries import (
    InspectionFilter,
    defect_pareto,
    list_inspections,
    model_history,
    rates,
    review_queue,
)
from inspector.store.repo import InvalidRecordError, add_review, ensure_product, record_inspections
from tests.helpers.factories import START, inspection_rows

N = 400


def seeded(Session):
    rows = inspection_rows(N)
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        record_inspections(s, rows)
        s.commit()
    return rows


def test_filtered_pagination_newest_first(Session):
    rows = seeded(Session)
    want = [r for r in rows if r["product_id"] == "tile" and r["verdict"] == "reject"]
    with Session() as s:
        page = list_inspections(s, InspectionFilter(product="tile", verdict="reject"), page=1, page_size=10)
    assert page.total == len(want)
    expected = sorted(want, key=lambda r: r["captured_at"], reverse=True)[10:20]
    assert [r.uuid for r in page.rows] == [r["uuid"] for r in expected]


def test_hourly_and_shift_rates_match_a_recount(Session):
    rows = seeded(Session)
    with Session() as s:
        hourly = rates(s, "hour")
        shifts = rates(s, "shift", by=("line",))
    recount = Counter(r["captured_at"].strftime("%Y-%m-%d %H:00") for r in rows)
    assert {h["bucket"]: h["n"] for h in hourly} == dict(recount)
    first = hourly[0]
    ok = sum(1 for r in rows if r["captured_at"] < START + timedelta(hours=1) and r["verdict"] == "accept")
    assert first["accept"] == ok
    assert abs(first["yield"] - ok / (first["n"] - first["error"])) < 1e-9
    shift_recount = Counter(
        (r["captured_at"].strftime("%Y-%m-%d ") + f"{r['captured_at'].hour // 8 * 8:02d}:00", r["line"]) for r in rows
    )
    assert {(x["bucket"], x["line"]): x["n"] for x in shifts} == dict(shift_recount)


def test_pareto_counts_defects_by_type(Session):
    rows = seeded(Session)
    with Session() as s:
        pareto = defect_pareto(s)
    want = Counter(r["defect_type"] for r in rows if r["verdict"] == "reject")
    assert dict(pareto) == dict(want)
    assert [n for _, n in pareto] == sorted(want.values(), reverse=True)


def test_review_queue_review_first_then_spot_checks_newest_first_then_rejects_unreviewed_only(Session):
    rows = inspection_rows(N)
    accepted = [r for r in rows if r["verdict"] == "accept"]
    for r in accepted[::40]:
        r["spot_check"] = True
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        record_inspections(s, rows)
        oldest_review = s.scalars(
            select(Inspection).where(Inspection.verdict == "review").order_by(Inspection.captured_at)
        ).first()
        add_review(s, oldest_review.id, "anna", "ok")
        newest_spot = s.scalars(select(Inspection).where(Inspection.uuid == accepted[::40][-1]["uuid"])).one()
        add_review(s, newest_spot.id, "anna", "defect", "crack")
        s.commit()
        queue = review_queue(s, limit=1000)
    verdicts = [q.verdict for q in queue]
    n_review = sum(r["verdict"] == "review" for r in rows) - 1
    spots = [r["uuid"] for r in reversed(accepted[::40][:-1])]
    assert verdicts == ["review"] * n_review + ["accept"] * len(spots) + ["reject"] * (
        len(queue) - n_review - len(spots)
    )
    assert [q.uuid for q in queue[n_review : n_review + len(spots)]] == spots and all(
        q.spot_check for q in queue[n_review : n_review + len(spots)]
    )
    assert oldest_review.uuid not in {q.uuid for q in queue}
    times = [q.captured_at for q in queue[:n_review]]
    assert times == sorted(times)


def test_only_an_accepted_part_can_be_a_spot_check(Session):
    row = {**inspection_rows(1)[0], "verdict": "reject", "defect_type": "crack", "spot_check": True}
    with Session() as s:
        ensure_product(s, "pcb")
        with pytest.raises(InvalidRecordError, match="a spot check is an accepted part, not a 'reject' one"):
            record_inspections(s, [row])


def test_model_history_empty(Session):
    with Session() as s:
        assert model_history(s) == []


def test_rates_from_hourly_counters_equal_a_scan_of_the_rows(Session):
    """Windows that start and end mid-hour, with filters: counters + edge rows == full scan."""
    from inspector.store.queries import _rates_rows

    rows = seeded(Session)
    with Session() as s:  # a second batch into hours that already have counts
        record_inspections(s, [{**r, "uuid": r["uuid"] + "b"} for r in rows[:50]])
        s.commit()
    windows = [
        InspectionFilter(),
        InspectionFilter(since=START + timedelta(minutes=17), until=START + timedelta(hours=3, minutes=5)),
        InspectionFilter(since=START + timedelta(minutes=5), until=START + timedelta(minutes=40)),
        InspectionFilter(product="tile", line="L1", since=START + timedelta(minutes=29)),
        InspectionFilter(verdict="reject", until=START + timedelta(hours=2, seconds=1)),
    ]
    with Session() as s:
        for flt in windows:
            for bucket, by in (("hour", ()), ("shift", ("line",)), ("day", ("product", "line"))):
                scanned = {}
                for key, counts in _rates_rows(s, bucket, flt, by):
                    scanned.setdefault(key, Counter()).update(counts)
                got = {
                    (x["bucket"], *(x[g] for g in by)): {v: x[v] for v in ("accept", "review", "reject", "error")}
                    for x in rates(s, bucket, flt, by)
                }

                want = {
                    (datetime.fromtimestamp(k[0], UTC).strftime("%Y-%m-%d %H:00"), *k[1:]): {
                        v: c[v] for v in ("accept", "review", "reject", "error")
                    }
                    for k, c in scanned.items()
                }
                assert got == want, (flt, bucket, by)


def test_an_inspection_row_holds_every_column_of_the_table():
    # a migration that adds a column must add it to the row the dashboard reads, or it is never shown
    from dataclasses import fields

    from inspector.store.rows import InspectionRow

    assert [f.name for f in fields(InspectionRow)] == [c.key for c in Inspection.__table__.columns]
