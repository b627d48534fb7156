"""defect, classifier and anomaly scores; anomaly map per inspection

The column ``anomaly_score`` held the classifier's P(defect), which was also the score the
thresholds cut. It is renamed ``classifier_score``; ``defect_score`` (the decision score)
starts as a copy of it for the rows stored so far; ``anomaly_score`` now holds the anomaly
part's score and is empty for older rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.alter_column("anomaly_score", new_column_name="classifier_score")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("defect_score", sa.Double(), nullable=True))
        batch_op.add_column(sa.Column("anomaly_score", sa.Double(), nullable=True))
    op.execute("UPDATE inspections SET defect_score = classifier_score")
    with op.batch_alter_table("inspection_signals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anomaly_map", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspection_signals", schema=None) as batch_op:
        batch_op.drop_column("anomaly_map")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_column("anomaly_score")
        batch_op.drop_column("defect_score")
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.alter_column("classifier_score", new_column_name="anomaly_score")
