"""review queue: parts no operator has judged, found without walking the judged ones

The queue asked, for every review verdict, spot check and reject in time order, whether a
review of it existed. Once operators kept up with a line's review verdicts it walked all of
them to find none (60,000 judged review verdicts: 270 ms on PostgreSQL). ``reviewed_at`` says
when an operator last judged a part; a partial index per kind of queue entry (review verdicts,
spot checks, rejects) holds only the parts still waiting, so the queue reads what it shows and little else.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# as inspector.store.inspections.OPEN_FOR_REVIEW read when this migration was written
OPEN = {
    "review": "verdict = 'review' AND reviewed_at IS NULL",
    "spot_check": "spot_check AND reviewed_at IS NULL",
    "reject": "verdict = 'reject' AND reviewed_at IS NULL",
}


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE inspections SET reviewed_at = "
        "(SELECT max(r.created_at) FROM reviews r WHERE r.inspection_id = inspections.id) "
        "WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.inspection_id = inspections.id)"
    )
    op.drop_index("ix_inspections_spot_check_captured", table_name="inspections")
    for kind, where in OPEN.items():
        op.create_index(
            f"ix_inspections_open_{kind}",
            "inspections",
            ["verdict", "captured_at"],
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def downgrade() -> None:
    for kind in OPEN:
        op.drop_index(f"ix_inspections_open_{kind}", table_name="inspections")
    op.create_index(
        "ix_inspections_spot_check_captured",
        "inspections",
        ["captured_at"],
        postgresql_where=sa.text("spot_check"),
        sqlite_where=sa.text("spot_check"),
    )
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("reviewed_at")
