"""Reads and writes of retraining: runs, their triggers, and model promotion history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from inspector.store.base import utcnow
from inspector.store.inspections import Review
from inspector.store.modeling import ModelVersion, RetrainRun
from inspector.store.monitoring import champion_row
from inspector.store.operations import DriftEvent
from inspector.store.repo import InvalidRecordError, audit, promote_model
from inspector.store.rows import RetrainRunRow


def start_run(session: Session, trigger: str, champion_id: int | None) -> int:
    run = RetrainRun(trigger=trigger, status="running", champion_id=champion_id)
    session.add(run)
    session.commit()
    return run.id


def finish_run(session: Session, run_id: int, **values: Any) -> None:
    run = session.get(RetrainRun, run_id)
    run.finished_at = utcnow()
    run.duration_s = (run.finished_at - run.started_at).total_seconds()
    for k, v in values.items():
        setattr(run, k, v)
    session.commit()


def mark_interrupted(session: Session) -> int:
    """Runs still 'running' when the retrain lease is free belong to a process that died."""
    n = session.execute(
        update(RetrainRun)
        .where(RetrainRun.status == "running")
        .values(status="interrupted", finished_at=utcnow(), reason="the process running it stopped")
    ).rowcount
    session.commit()
    return n


def last_run_started(session: Session) -> datetime | None:
    return session.scalar(select(func.max(RetrainRun.started_at)).where(RetrainRun.status != "skipped"))


def champion_data(session: Session) -> tuple[list[str], str | None]:
    """The champion's training data folders and when it was trained (its stored card), or ([], None)."""
    m = champion_row(session)
    card = (m.card if m is not None else None) or {}
    roots = (card.get("data") or {}).get("roots") or []
    return [str(r) for r in roots], card.get("created_at")


def reviews_since(session: Session, since: datetime | None) -> int:
    stmt = select(func.count()).select_from(Review)
    if since:
        stmt = stmt.where(Review.created_at >= since)
    return session.scalar(stmt) or 0


def high_drift_since(session: Session, since: datetime | None) -> list[dict[str, Any]]:
    stmt = select(DriftEvent).where(DriftEvent.severity == "high").order_by(DriftEvent.created_at)
    if since:
        stmt = stmt.where(DriftEvent.created_at >= since)
    return [
        {"product": e.product_id, "line": e.line, "metric": e.metric, "value": e.value} for e in session.scalars(stmt)
    ]


def retrain_runs(session: Session, limit: int = 100) -> list[RetrainRunRow]:
    """The latest runs, newest first."""
    stmt = select(RetrainRun).order_by(RetrainRun.started_at.desc(), RetrainRun.id.desc()).limit(limit)
    return [RetrainRunRow.of(r) for r in session.scalars(stmt)]


def rollback_model(session: Session, actor: str) -> ModelVersion:
    """Make the champion before the current one champion again. Audited."""
    current = session.scalars(select(ModelVersion).where(ModelVersion.status == "champion")).first()
    previous = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.status == "retired", ModelVersion.promoted_at.is_not(None))
        .order_by(ModelVersion.promoted_at.desc())
    ).first()
    if previous is None:
        raise InvalidRecordError("no earlier champion to roll back to")
    mv = promote_model(session, previous.id, actor)
    audit(session, actor, "rollback", f"model:{previous.id}", {"from": current.name if current else None})
    session.flush()
    return mv
