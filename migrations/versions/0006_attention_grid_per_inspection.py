"""attention grid per inspection

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 13:35:56.979236
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspection_signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attention", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspection_signals", schema=None) as batch_op:
        batch_op.drop_column("attention")
