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
from inspector.store.rows import DriftEventRow, JudgedPart, ModelVersionRow
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


def champion(session: Session) -> ModelVersionRow | None:
    m = champion_row(session)
    return None if m is None else ModelVersionRow.of(m)


def monitored_streams(session: Session, model_version_id: int, since: datetime) -> list[tuple[str, str]]:
    """(product, line) pairs the model has judged since ``since``."""
    stmt = (
        select(Inspection.product_id, Inspection.line)
        .distinct()
        .where(Inspection.model_version_id == model_version_id, Inspection.captured_at >= since)
        .order_by(Inspection.product_id, Inspection.line)
    )
    return [(p, line) for p, line in session.execute(stmt)]


def recent_judged(session: Session, product: str, line: str, model_version_id: int, limit: int) -> list[JudgedPart]:
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
    return [JudgedPart(**r) for r in reversed(session.execute(stmt).mappings().all())]


@dataclass(frozen=True)
class LineReviews:
    """One model's verdicts on one stream in a period, and what its operators' latest reviews say."""

    judged: int  # parts the model judged (accepted, sent to review, rejected)
    accepted: int
    rejected: int
    reviewed_rejects: int  # rejects with a review
    false_rejects: int  # ... whose latest review says the part is good
    confirmed_defects: int  # judged parts whose latest review says defective
    spot_checks: int = 0  # accepted parts picked at random for review
    reviewed_spot_checks: int = 0
    shipped_defects: int = 0  # reviewed spot checks found defective
    held_defects: int = 0  # parts sent to review that the operator found defective


def line_reviews(session: Session, product: str, line: str, model_version_id: int, since: datetime) -> LineReviews:
    stream = (
        Inspection.product_id == product,
        Inspection.line == line,
        Inspection.model_version_id == model_version_id,
        Inspection.captured_at >= since,
        Inspection.verdict != "error",
    )
    counts = session.execute(
        select(Inspection.verdict, Inspection.spot_check, func.count())
        .where(*stream)
        .group_by(Inspection.verdict, Inspection.spot_check)
    ).all()
    verdicts: dict[str, int] = {}
    for v, _, n in counts:
        verdicts[v] = verdicts.get(v, 0) + int(n)
    latest = (
        select(Review.inspection_id, func.max(Review.id).label("review_id")).group_by(Review.inspection_id).subquery()
    )
    reviewed = session.execute(
        select(Inspection.verdict, Inspection.spot_check, Review.label, func.count())
        .join(latest, latest.c.inspection_id == Inspection.id)
        .join(Review, Review.id == latest.c.review_id)
        .where(*stream)
        .group_by(Inspection.verdict, Inspection.spot_check, Review.label)
    ).all()
    by: dict[tuple[str, bool, str], int] = {(v, bool(spot), label): int(n) for v, spot, label, n in reviewed}

    def reviews(verdict: str, spot: bool | None = None, label: str | None = None) -> int:
        return sum(
            n
            for (v, sp, lb), n in by.items()
            if v == verdict and (spot is None or sp == spot) and (label is None or lb == label)
        )

    return LineReviews(
        judged=sum(verdicts.values()),
        accepted=verdicts.get("accept", 0),
        rejected=verdicts.get("reject", 0),
        reviewed_rejects=reviews("reject"),
        false_rejects=reviews("reject", label="ok"),
        confirmed_defects=sum(n for (_, _, label), n in by.items() if label == "defect"),
        spot_checks=sum(int(n) for v, spot, n in counts if spot),
        reviewed_spot_checks=reviews("accept", True),
        shipped_defects=reviews("accept", True, "defect"),
        held_defects=reviews("review", label="defect"),
    )


@dataclass(frozen=True)
class HeldOutEscape:
    rate: float  # defects the model accepted on its held-out test split
    parts: int  # the defective parts it was measured on (0: not recorded)


def held_out_escape(session: Session, model_version_id: int) -> dict[str, HeldOutEscape]:
    """product -> the share of defects the model accepted on its held-out test split (a defect
    in the review band is held for an operator, not shipped; cards that did not record that
    share give the escape rate, which counts it too)."""
    mv = session.get(ModelVersion, model_version_id)
    test = ((mv.metrics if mv is not None else None) or {}).get("test") or {}
    out = {}
    for p, m in test.items():
        rate = m.get("escape_to_accept_rate", m.get("escape_rate")) if isinstance(m, dict) else None
        if rate is not None:
            out[p] = HeldOutEscape(float(rate), int(m.get("defect_parts") or 0))
    return out


def record_drift_events(session: Session, events: list[dict[str, Any]]) -> list[DriftEventRow]:
    """Store events given as their columns' values -> the stored rows."""
    stored = [DriftEvent(**e) for e in events]
    session.add_all(stored)
    session.flush()
    return [DriftEventRow.of(e) for e in stored]


def drift_events(
    session: Session,
    product: str | None = None,
    line: str | None = None,
    metric: str | list[str] | None = None,
    since: datetime | None = None,
    min_severity: str | None = None,
    limit: int = 1000,
) -> list[DriftEventRow]:
    """Newest first; ``min_severity='warn'`` leaves out the checks that found nothing."""
    c = DriftEvent
    stmt = select(c).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
    if product:
        stmt = stmt.where(c.product_id == product)
    if line is not None:
        stmt = stmt.where(c.line == line)
    if metric:
        stmt = stmt.where(c.metric.in_([metric] if isinstance(metric, str) else metric))
    if since:
        stmt = stmt.where(c.created_at >= since)
    if min_severity:
        stmt = stmt.where(c.severity.in_(("warn", "high") if min_severity == "warn" else ("high",)))
    return [DriftEventRow.of(e) for e in session.scalars(stmt)]
