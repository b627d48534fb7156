"""inspections.golden: mark a product's fixed evaluation images (kept by retention)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        # server_default fills the rows already there; the ORM supplies the value from then on
        batch_op.add_column(sa.Column("golden", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.alter_column("golden", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("golden")
