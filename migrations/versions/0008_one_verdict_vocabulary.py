"""one verdict vocabulary: accept / review / reject (was ok / uncertain / defect)

The engine, CLI and docs said accept / warn / reject while the store said ok / uncertain /
defect. The line's decision now has one set of words everywhere; stored rows and the hourly
counters are renamed in place. Operator review labels (ok / defect) describe the part, not the
line's decision, and keep their words.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

NEW = {"ok": "accept", "uncertain": "review", "defect": "reject"}
CHECK = "ck_inspections_verdict"


def _rename(mapping: dict[str, str], allowed: tuple[str, ...]) -> None:
    # the old CHECK refuses the new words: drop it, rename, then check the new set
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(CHECK), type_="check")
    for table in ("inspections", "inspection_counts"):
        t = sa.table(table, sa.column("verdict", sa.String))
        for old, new in mapping.items():
            op.execute(t.update().where(t.c.verdict == old).values(verdict=new))
    with op.batch_alter_table("inspections", schema=None) as batch_op:
        batch_op.create_check_constraint("verdict", sa.column("verdict").in_(allowed))


def upgrade() -> None:
    _rename(NEW, ("accept", "review", "reject", "error"))


def downgrade() -> None:
    _rename({v: k for k, v in NEW.items()}, ("ok", "defect", "uncertain", "error"))
