"""Hourly counts of verdicts per product and line, kept up to date by the write path.

Rates over days and shifts then read a few thousand counter rows instead of every inspection
(the 7-day shift report fell from 225 ms to a few ms on a million rows). Only whole hours come
from here; the queries add the partial hours at a window's edges from ``inspections`` itself.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from inspector.store.base import Base, UTCDateTime


class InspectionCount(Base):
    __tablename__ = "inspection_counts"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[str] = mapped_column(String(64), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


def hour_of(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def count_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add a batch of inspection rows to the hourly counters (one upsert, a parameter set per counter)."""
    counts = Counter((hour_of(r["captured_at"]), r["product_id"], r["line"], r["verdict"]) for r in rows)
    if not counts:
        return
    # sorted: writers on one database lock counter rows in the same order, so they cannot deadlock
    values = [
        {"hour": h, "product_id": p, "line": line, "verdict": v, "n": n}
        for (h, p, line, v), n in sorted(counts.items())
    ]
    session.execute(_upsert(session.get_bind().dialect.name), values)


@cache
def _upsert(dialect: str):
    """One statement per dialect, built once: rendered with the batch's values inline it was built
    and compiled anew for every batch (0.25 ms a part against 0.07 ms, on SQLite)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(InspectionCount)
    return stmt.on_conflict_do_update(
        index_elements=["hour", "product_id", "line", "verdict"], set_={"n": InspectionCount.n + stmt.excluded.n}
    )
