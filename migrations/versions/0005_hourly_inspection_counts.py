"""hourly inspection counts (backfilled from the inspections already stored)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 13:33:27.121165
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import sqlalchemy as sa
from alembic import op

from inspector.store.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection_counts",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "product_id", "line", "verdict", name=op.f("pk_inspection_counts")),
    )
    _backfill(op.get_bind())


def _backfill(conn) -> None:
    """Count the inspections already stored, hour by hour (streamed: memory stays flat)."""
    src = sa.table(
        "inspections",
        sa.column("id"),
        sa.column("captured_at", UTCDateTime()),
        sa.column("product_id"),
        sa.column("line"),
        sa.column("verdict"),
    )
    dst = sa.table(
        "inspection_counts",
        sa.column("hour", UTCDateTime()),
        sa.column("product_id"),
        sa.column("line"),
        sa.column("verdict"),
        sa.column("n"),
    )
    counts: Counter = Counter()
    last = -1
    while True:  # keyset pages: memory stays flat on a large table
        page = conn.execute(sa.select(src).where(src.c.id > last).order_by(src.c.id).limit(20_000)).all()
        if not page:
            break
        last = page[-1][0]
        for _, t, product, line, verdict in page:
            counts[(t.astimezone(UTC).replace(minute=0, second=0, microsecond=0), product, line, verdict)] += 1
    values = [{"hour": h, "product_id": p, "line": ln, "verdict": v, "n": n} for (h, p, ln, v), n in counts.items()]
    for i in range(0, len(values), 5000):
        conn.execute(dst.insert(), values[i : i + 5000])


def downgrade() -> None:
    op.drop_table("inspection_counts")
