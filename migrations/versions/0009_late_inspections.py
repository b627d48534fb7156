"""late inspections: the PLC handshake's inspect window passed before the verdict

The line rejected such a part fail-safe (result code 101, timeout); the model's verdict is
still stored when it comes, and ``late`` says the line did not wait for it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("late")
