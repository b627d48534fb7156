"""Leases (one retraining at a time across processes) and APScheduler's job table.

APScheduler's SQLAlchemyJobStore would create ``apscheduler_jobs`` itself; the table is declared
here too so that the migrations create it and remain the only way the schema changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Column, Float, LargeBinary, String, Table, Unicode, delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from inspector.store.base import Base, UTCDateTime, utcnow

SCHEDULER_JOBS = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


def acquire_lease(session: Session, name: str, holder: str, ttl_s: float) -> bool:
    """Take ``name`` for ``ttl_s`` seconds unless another holder has it and it has not expired.

    One conditional UPDATE (or the INSERT of a new row) decides, so two processes racing for
    the same lease cannot both win on SQLite or PostgreSQL. Commits.
    """
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s)
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.expires_at < now, Lease.holder == holder))
        .values(holder=holder, acquired_at=now, expires_at=expires)
    ).rowcount
    if taken:
        session.commit()
        return True
    try:
        session.execute(insert(Lease).values(name=name, holder=holder, acquired_at=now, expires_at=expires))
        session.commit()
        return True
    except IntegrityError:  # someone holds it (or just took it)
        session.rollback()
        return False


def release_lease(session: Session, name: str, holder: str) -> None:
    session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
    session.commit()


def lease_holder(session: Session, name: str) -> str | None:
    lease = session.get(Lease, name)
    return lease.holder if lease is not None and lease.expires_at > utcnow() else None
