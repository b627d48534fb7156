"""Reads and writes of drift monitoring: production windows with their signals, drift events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inspector.store.inspections import Inspection, Review
from inspector.store.modeling import ModelVersion
from inspector.store.operations import DriftEvent
from inspector.store.signals import InspectionSignal

WINDOW_COLUMNS = (
    Inspection.id,
    Inspection.captured_at,
    Inspection.verdict,
    Inspection.defect_type,
    Inspection.confidence,
    InspectionSignal.embedding,
    InspectionSignal.brightness,
    InspectionSignal.contrast,
    InspectionSignal.sharpness,
    InspectionSignal.width,
    InspectionSignal.height,
)


def champion_row(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.status == "champion")).first()


def champion(session: Session) -> dict[str, Any] | None:
    m = champion_row(session)
    return None if m is None else {"id": m.id, "name": m.name, "artifact_path": m.artifact_path}


def monitored_streams(session: Session, model_version_id: int, since: datetime) -> list[tuple[str, str]]:
    """(product, line) pairs the model has judged since ``since``."""
    stmt = (
        select(Inspection.product_id, Inspection.line)
        .distinct()
        .where(Inspection.model_version_id == model_version_id, Inspection.captured_at >= since)
        .order_by(Inspection.product_id, Inspection.line)
    )
    return [(p, line) for p, line in session.execute(stmt)]


def recent_judged(session: Session, product: str, line: str, model_version_id: int, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` judged (not error) inspections of one stream, oldest first, with signals."""
    stmt = (
        select(*WINDOW_COLUMNS)
        .outerjoin(InspectionSignal, InspectionSignal.inspection_uuid == Inspection.uuid)
        .where(
            Inspection.product_id == product,
            Inspection.line == line,
            Inspection.model_version_id == model_version_id,
            Inspection.verdict != "error",
        )
        .order_by(Inspection.captured_at.desc(), Inspection.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in reversed(session.execute(stmt).mappings().all())]


@dataclass(frozen=True)
class RejectReviews:
    """One model's verdicts on one stream in a period, and what its operators' latest reviews say."""

    judged: int  # parts the model judged (accepted, sent to review, rejected)
    rejected: int
    reviewed_rejects: int  # rejects with a review
    false_rejects: int  # ... whose latest review says the part is good
    confirmed_defects: int  # judged parts whose latest review says defective


def reject_reviews(session: Session, product: str, line: str, model_version_id: int, since: datetime) -> RejectReviews:
    stream = (
        Inspection.product_id == product,
        Inspection.line == line,
        Inspection.model_version_id == model_version_id,
        Inspection.captured_at >= since,
        Inspection.verdict != "error",
    )
    verdicts = dict(
        session.execute(select(Inspection.verdict, func.count()).where(*stream).group_by(Inspection.verdict)).all()
    )
    latest = (
        select(Review.inspection_id, func.max(Review.id).label("review_id")).group_by(Review.inspection_id).subquery()
    )
    reviewed = session.execute(
        select(Inspection.verdict, Review.label, func.count())
        .join(latest, latest.c.inspection_id == Inspection.id)
        .join(Review, Review.id == latest.c.review_id)
        .where(*stream)
        .group_by(Inspection.verdict, Review.label)
    ).all()
    by = {(v, label): int(n) for v, label, n in reviewed}
    return RejectReviews(
        judged=sum(verdicts.values()),
        rejected=verdicts.get("reject", 0),
        reviewed_rejects=by.get(("reject", "ok"), 0) + by.get(("reject", "defect"), 0),
        false_rejects=by.get(("reject", "ok"), 0),
        confirmed_defects=sum(n for (_, label), n in by.items() if label == "defect"),
    )


def record_drift_events(session: Session, events: list[dict[str, Any]]) -> None:
    session.add_all(DriftEvent(**e) for e in events)
    session.flush()


def drift_events(
    session: Session,
    product: str | None = None,
    line: str | None = None,
    metric: str | None = None,
    since: datetime | None = None,
    min_severity: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Newest first; ``min_severity='warn'`` leaves out the checks that found nothing."""
    c = DriftEvent
    stmt = select(c).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    if product:
        stmt = stmt.where(c.product_id == product)
    if line is not None:
        stmt = stmt.where(c.line == line)
    if metric:
        stmt = stmt.where(c.metric == metric)
    if since:
        stmt = stmt.where(c.created_at >= since)
    if min_severity:
        stmt = stmt.where(c.severity.in_(("warn", "high") if min_severity == "warn" else ("high",)))
    return [{k.key: getattr(e, k.key) for k in c.__table__.columns} for e in session.scalars(stmt)]
