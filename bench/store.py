"""Store benchmark: batched insert throughput and dashboard-query latency at scale, on SQLite
and PostgreSQL, with EXPLAIN plans and the writer's memory. Prints JSON.

    python bench/store.py --rows 1000000            # both engines (PostgreSQL at 127.0.0.1:5432)
    python bench/store.py --rows 100000 --engines sqlite

Targets (issue #5): >= 20,000 inserts/s PostgreSQL, >= 10,000/s SQLite; each dashboard query
<= 200 ms on PostgreSQL with 1,000,000 inspections; writer memory flat.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, literal, select, text, update
from sqlalchemy.engine import make_url

from inspector.recorder import spot_checked
from inspector.store.inspections import OPEN_FOR_REVIEW, Inspection, Review
from inspector.store.migrate import upgrade
from inspector.store.queries import (
    InspectionFilter,
    defect_pareto,
    latest_reviews,
    list_inspections,
    model_history,
    rates,
    review_queue,
)
from inspector.store.repo import add_review, ensure_product, record_inspections
from inspector.store.session import make_engine, session_factory
from tests.helpers.factories import START, inspection_rows

ADMIN = os.environ.get("INSPECTOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BATCH = 5000
STEP_S = 2.0  # one part every 2 s per row stream: 1M rows span ~23 days
SPOT_CHECK_SHARE = 0.005  # the station's default share of accepted parts sent to review


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load(Session, rows: int) -> dict:
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        s.commit()
    writing, mem = 0.0, []  # only the write path (validation + insert + commit) is timed
    for i in range(0, rows, BATCH):
        batch = inspection_rows(
            min(BATCH, rows - i), seed=i // BATCH, start=START + timedelta(seconds=i * STEP_S), step_s=STEP_S
        )
        for r in batch:
            r["uuid"] = str(uuid.uuid4())
            r["spot_check"] = r["verdict"] == "accept" and spot_checked(r["uuid"], SPOT_CHECK_SHARE)
        t0 = time.perf_counter()
        with Session() as s:
            record_inspections(s, batch)
            s.commit()
        took = time.perf_counter() - t0
        writing += took
        if i == 0:
            first = took
        if (i // BATCH) % 20 == 0:
            mem.append(round(rss_mb(), 1))
    elapsed = writing
    return {
        "rows": rows,
        "seconds": round(elapsed, 1),
        "rows_per_s": round(rows / elapsed),
        "first_batch_rows_per_s": round(BATCH / first),
        "rss_mb_samples": mem,
        "rss_growth_mb_after_first_10pct": round(mem[-1] - mem[max(1, len(mem) // 10)], 1) if len(mem) > 2 else 0,
    }


def queries(Session, engine, rows: int) -> dict:
    end = START + timedelta(seconds=rows * STEP_S)
    day, week = InspectionFilter(since=end - timedelta(days=1)), InspectionFilter(since=end - timedelta(days=7))
    with Session() as s:
        ids = [r.id for r in list_inspections(s, InspectionFilter(verdict="review"), page_size=200).rows]
        for i in ids[:100]:
            add_review(s, i, "bench", "defect", "crack")
        s.commit()
    cases = {
        "list recent (page 1, 50 rows)": lambda s: list_inspections(s, InspectionFilter(), page_size=50),
        "list product+verdict, last 7 days": lambda s: list_inspections(
            s, InspectionFilter(product="tile", verdict="reject", since=week.since), page_size=50
        ),
        "list line, last day, page 10": lambda s: list_inspections(
            s, InspectionFilter(line="L1", since=day.since), page=10, page_size=50
        ),
        "hourly rates, last day": lambda s: rates(s, "hour", day),
        "shift rates by line, last 7 days": lambda s: rates(s, "shift", week, by=("line",)),
        "defect pareto, last 7 days": lambda s: defect_pareto(s, week),
        "review queue (50)": lambda s: review_queue(s, 50),
        "reviewed samples for retraining": lambda s: latest_reviews(s),
        "model history": lambda s: model_history(s),
    }
    out = {name: timed(Session, fn) for name, fn in cases.items()}
    # operators who keep up with the review verdicts: the queue then starts with the spot checks
    # (written in bulk as add_review writes each: the review and the part's reviewed_at)
    with Session() as s:
        waiting = (Inspection.verdict == "review", Inspection.reviewed_at.is_(None))
        judged = select(Inspection.id, literal("bench"), literal("ok"), literal(end, Review.created_at.type))
        cols = ["inspection_id", "reviewer", "label", "created_at"]
        s.execute(insert(Review).from_select(cols, judged.where(*waiting)))
        s.execute(update(Inspection).where(*waiting).values(reviewed_at=end))
        s.commit()
    out["review queue, review verdicts all judged, statistics before the judging (50)"] = timed(
        Session, lambda s: review_queue(s, 50)
    )
    # a line's steady state: its statistics have seen the judged history (autovacuum's analyze)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE inspections"))
    out["review queue, review verdicts all judged (50)"] = timed(Session, lambda s: review_queue(s, 50))
    return out


def timed(Session, fn) -> dict:
    times = []
    for _ in range(7):
        with Session() as s:
            t0 = time.perf_counter()
            fn(s)
            times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(statistics.median(times[1:]), 1), "max_ms": round(max(times[1:]), 1)}


def explain(engine) -> dict:
    """Plans of the heaviest dashboard statements, to show they use the indexes."""
    dialect = engine.dialect.name
    prefix = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    stmts = {
        "list product+verdict": "SELECT * FROM inspections WHERE product_id = 'tile' AND verdict = 'reject' "
        "ORDER BY captured_at DESC LIMIT 50",
        "rates last day": "SELECT count(*) FROM inspections WHERE captured_at >= :since",
        "review queue (review part)": f"SELECT * FROM inspections WHERE {OPEN_FOR_REVIEW['review'][1]} "
        "AND verdict = 'review' ORDER BY captured_at, id LIMIT 50",
        "review queue (spot-check part)": f"SELECT * FROM inspections WHERE {OPEN_FOR_REVIEW['spot_check'][1]} "
        "AND verdict = 'accept' ORDER BY captured_at DESC, id LIMIT 50",
        "shift rates (counters)": "SELECT hour, line, verdict, n FROM inspection_counts WHERE hour >= :since",
    }
    out = {}
    with engine.connect() as conn:
        for name, sql in stmts.items():
            rows = conn.execute(text(prefix + sql), {"since": START + timedelta(days=20)}).fetchall()
            out[name] = [" ".join(str(c) for c in r) for r in rows]
    return out


def run(url: str, rows: int) -> dict:
    upgrade(url)
    engine = make_engine(url)
    Session = session_factory(engine)
    result = {"insert": load(Session, rows)}
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    result["queries"] = queries(Session, engine, rows)
    result["explain"] = explain(engine)
    engine.dispose()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    out = {"rows": args.rows, "batch": BATCH, "machine": f"{os.cpu_count()} cores"}
    if "sqlite" in args.engines:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"] = run(f"sqlite:///{tmp}/bench.db", args.rows)
    if "postgresql" in args.engines:
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        name = f"inspector_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            out["postgresql"] = run(make_url(ADMIN).set(database=name).render_as_string(hide_password=False), args.rows)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
