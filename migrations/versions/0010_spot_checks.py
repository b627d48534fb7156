"""spot checks: accepted parts picked at random for an operator to look at

Reviews of rejects say how many good parts the station rejects; only reviews of accepted
parts chosen without looking at them say how many defects it ships. ``spot_check`` marks
those parts (the station picks them by a hash of the inspection's uuid), and a partial index
keeps the review queue's walk over them short.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spot_check", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(
        "ix_inspections_spot_check_captured",
        "inspections",
        ["captured_at"],
        postgresql_where=sa.text("spot_check"),
        sqlite_where=sa.text("spot_check"),
    )


def downgrade() -> None:
    op.drop_index("ix_inspections_spot_check_captured", table_name="inspections")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("spot_check")
