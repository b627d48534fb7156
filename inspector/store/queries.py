"""Read-only queries: the only SQL the dashboard and retraining use. They return the frozen rows
of ``inspector.store.rows`` (and plain counts), never ORM objects, so nothing lazy-loads outside
a session."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, ColumnElement, and_, cast, exists, func, select, text
from sqlalchemy.orm import Session

from inspector.store.catalog import ManualVersion, Product
from inspector.store.inspections import OPEN_FOR_REVIEW, Inspection, Review
from inspector.store.modeling import ModelVersion
from inspector.store.rollup import InspectionCount, hour_of
from inspector.store.rows import (
    InspectionDetail,
    InspectionRow,
    ManualVersionRow,
    ModelVersionRow,
    ProductOverview,
    ReviewedPart,
    ReviewRow,
    Streams,
)
from inspector.store.signals import InspectionSignal

Bucket = Literal["hour", "shift", "day"]


@dataclass(frozen=True)
class InspectionFilter:
    product: str | None = None
    line: str | None = None
    verdict: str | None = None
    defect_type: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    since: datetime | None = None
    until: datetime | None = None
    reviewed: bool | None = None

    def where(self) -> list[ColumnElement[bool]]:
        c, out = Inspection, []
        if self.product:
            out.append(c.product_id == self.product)
        if self.line:
            out.append(c.line == self.line)
        if self.verdict:
            out.append(c.verdict == self.verdict)
        if self.defect_type:
            out.append(c.defect_type == self.defect_type)
        if self.min_confidence is not None:
            out.append(c.confidence >= self.min_confidence)
        if self.max_confidence is not None:
            out.append(c.confidence <= self.max_confidence)
        if self.since:
            out.append(c.captured_at >= self.since)
        if self.until:
            out.append(c.captured_at < self.until)
        if self.reviewed is not None:
            has = exists().where(Review.inspection_id == c.id)
            out.append(has if self.reviewed else ~has)
        return out


@dataclass(frozen=True)
class Page:
    rows: list[InspectionRow]
    total: int
    page: int
    page_size: int


def list_inspections(
    session: Session, flt: InspectionFilter = InspectionFilter(), page: int = 0, page_size: int = 50
) -> Page:
    """Newest first, filtered and paginated."""
    where = flt.where()
    total = session.scalar(select(func.count()).select_from(Inspection).where(*where)) or 0
    rows = session.scalars(
        select(Inspection)
        .where(*where)
        .order_by(Inspection.captured_at.desc(), Inspection.id.desc())
        .offset(page * page_size)
        .limit(page_size)
    ).all()
    return Page([InspectionRow.of(r) for r in rows], total, page, page_size)


BUCKET_SECONDS = {"hour": 3600, "shift": 8 * 3600, "day": 86400}  # shifts start 00:00, 08:00, 16:00 UTC


def _bucket(session: Session, bucket: Bucket) -> ColumnElement:
    """Start of the hour / 8-hour shift / day of captured_at as epoch seconds: integer arithmetic
    on an index-friendly column is several times cheaper than formatting every row's timestamp."""
    col = Inspection.captured_at
    if session.get_bind().dialect.name == "sqlite":
        epoch = cast(func.strftime("%s", col), BigInteger)
    else:
        epoch = cast(func.extract("epoch", col), BigInteger)
    return epoch - epoch % BUCKET_SECONDS[bucket]


COUNTS = ("accept", "review", "reject", "error")


def rates(
    session: Session, bucket: Bucket = "hour", flt: InspectionFilter = InspectionFilter(), by: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Counts, yield and defect rate per time bucket (and per product / line if in ``by``).

    Filters on product, line, verdict and time read the hourly counters (``rollup.py``) for
    whole hours and the inspections only for the partial hours at the window's edges.
    """
    rollup_ok = not any(
        (flt.defect_type, flt.min_confidence is not None, flt.max_confidence is not None, flt.reviewed is not None)
    )
    totals: dict[tuple, Counter] = {}
    for key, counts in _rates_rollup(session, bucket, flt, by) if rollup_ok else _rates_rows(session, bucket, flt, by):
        totals.setdefault(key, Counter()).update(counts)
    out = []
    for key in sorted(totals):
        c = totals[key]
        d = {"bucket": datetime.fromtimestamp(key[0], UTC).strftime("%Y-%m-%d %H:00")}
        d.update(zip(by, key[1:], strict=True))
        d["n"] = sum(c[v] for v in COUNTS)
        d.update({v: c[v] for v in COUNTS})
        judged = d["n"] - d["error"]
        d["yield"] = d["accept"] / judged if judged else None
        d["defect_rate"] = d["reject"] / judged if judged else None
        out.append(d)
    return out


def _rates_rows(session: Session, bucket: Bucket, flt: InspectionFilter, by: tuple[str, ...]):
    """-> ((bucket epoch, *groups), {verdict: count}) from the inspections themselves."""
    b = _bucket(session, bucket).label("bucket")
    groups = [getattr(Inspection, "product_id" if g == "product" else g).label(g) for g in by]
    stmt = (
        select(b, *groups, Inspection.verdict, func.count().label("n"))
        .where(*flt.where())
        .group_by(b, *groups, Inspection.verdict)
    )
    for r in session.execute(stmt):
        yield (int(r[0]), *r[1 : 1 + len(by)]), {r[-2]: r[-1]}


def _rates_rollup(session: Session, bucket: Bucket, flt: InspectionFilter, by: tuple[str, ...]):
    """The same, from the hourly counters for whole hours plus the rows of the edge hours."""
    lo = _ceil_hour(flt.since) if flt.since else None
    hi = hour_of(flt.until) if flt.until else None
    if lo and hi and lo >= hi:  # the window lies within one hour
        yield from _rates_rows(session, bucket, flt, by)
        return
    c = InspectionCount
    stmt = select(c.hour, c.product_id, c.line, c.verdict, c.n)
    if lo:
        stmt = stmt.where(c.hour >= lo)
    if hi:
        stmt = stmt.where(c.hour < hi)
    for col, value in ((c.product_id, flt.product), (c.line, flt.line), (c.verdict, flt.verdict)):
        if value:
            stmt = stmt.where(col == value)
    size = BUCKET_SECONDS[bucket]
    for hour, product, line, verdict, n in session.execute(stmt):
        epoch = int(hour.timestamp())
        fields = {"product": product, "line": line}
        yield (epoch - epoch % size, *(fields[g] for g in by)), {verdict: n}
    if flt.since and lo and flt.since < lo:
        yield from _rates_rows(session, bucket, replace(flt, until=min(lo, flt.until) if flt.until else lo), by)
    if flt.until and hi and hi < flt.until:
        yield from _rates_rows(session, bucket, replace(flt, since=max(hi, flt.since) if flt.since else hi), by)


def _ceil_hour(t: datetime) -> datetime:
    floor = hour_of(t)
    return floor if floor == t else floor + timedelta(hours=1)


def defect_pareto(session: Session, flt: InspectionFilter = InspectionFilter()) -> list[tuple[str, int]]:
    """Defect types by count, most frequent first."""
    stmt = (
        select(Inspection.defect_type, func.count().label("n"))
        .where(Inspection.verdict == "reject", Inspection.defect_type.is_not(None), *flt.where())
        .group_by(Inspection.defect_type)
        .order_by(func.count().desc(), Inspection.defect_type)
    )
    return [(t, n) for t, n in session.execute(stmt)]


def review_queue(session: Session, limit: int = 50, product: str | None = None) -> list[InspectionRow]:
    """Unreviewed parts sent to review first (oldest first), then spot checks (newest first), then
    rejected ones (oldest first).

    Spot checks come before rejects: a line rejects more parts than operators can look at, and
    the spot checks, a few accepted parts picked at random, are the one measurement of the
    defects the station ships; newest first, while the part can still be found. One query per
    kind, each walking its partial index of parts no operator has judged (``reviewed_at``) in
    order and stopping at ``limit``: a single query ordered by a CASE expression would sort every
    such row of the table first, and a test for a review row would walk every judged part.
    """
    c, out = Inspection, list[InspectionRow]()
    kinds = (("review", c.captured_at), ("spot_check", c.captured_at.desc()), ("reject", c.captured_at))
    for kind, order in kinds:
        if len(out) >= limit:
            break
        verdict, waiting = OPEN_FOR_REVIEW[kind]
        where = (text(waiting), c.verdict == verdict, *((c.product_id == product,) if product else ()))
        stmt = select(c).where(*where).order_by(order, c.id).limit(limit - len(out))
        out += [InspectionRow.of(r) for r in session.scalars(stmt)]
    return out


def latest_reviews(session: Session, product: str | None = None, since: datetime | None = None) -> list[ReviewedPart]:
    """Reviewed inspections with their latest review (the label retraining learns from)."""
    latest = (
        select(Review.inspection_id, func.max(Review.id).label("review_id")).group_by(Review.inspection_id).subquery()
    )
    stmt = (
        select(Inspection, Review)
        .join(latest, latest.c.inspection_id == Inspection.id)
        .join(Review, and_(Review.id == latest.c.review_id))
        .order_by(Inspection.captured_at)
    )
    if product:
        stmt = stmt.where(Inspection.product_id == product)
    if since:
        stmt = stmt.where(Review.created_at >= since)
    return [ReviewedPart(InspectionRow.of(i), ReviewRow.of(r)) for i, r in session.execute(stmt)]


def model_history(session: Session) -> list[ModelVersionRow]:
    """Every registered model version, newest first."""
    rows = session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc()))
    return [ModelVersionRow.of(m) for m in rows]


def inspection_detail(session: Session, inspection_id: int) -> InspectionDetail | None:
    """One inspection with its reviews (newest first), manual text, attention grid and anomaly map."""
    obj = session.get(Inspection, inspection_id)
    if obj is None:
        return None
    reviews = session.scalars(
        select(Review).where(Review.inspection_id == inspection_id).order_by(Review.created_at.desc(), Review.id.desc())
    )
    manual = session.get(ManualVersion, obj.manual_version_id) if obj.manual_version_id else None
    sig = session.get(InspectionSignal, obj.uuid)
    return InspectionDetail.of(
        obj,
        reviews=[ReviewRow.of(r) for r in reviews],
        manual_text=manual.text if manual else None,
        manual_version=manual.version if manual else None,
        attention=sig.attention if sig else None,
        anomaly_map=sig.anomaly_map if sig else None,
    )


def products_overview(session: Session) -> list[ProductOverview]:
    """Products with their manual versions (newest first, full text)."""
    versions: dict[str, list[ManualVersionRow]] = {}
    for m in session.scalars(select(ManualVersion).order_by(ManualVersion.product_id, ManualVersion.version.desc())):
        versions.setdefault(m.product_id, []).append(ManualVersionRow.of(m))
    return [
        ProductOverview(p.id, p.name, p.active, versions.get(p.id, []))
        for p in session.scalars(select(Product).order_by(Product.id))
    ]


def latest_manuals(session: Session) -> dict[str, tuple[str, str]]:
    """Each product's newest manual version: product -> (sha256, text)."""
    newest = (
        select(ManualVersion.product_id, func.max(ManualVersion.version).label("v"))
        .group_by(ManualVersion.product_id)
        .subquery()
    )
    stmt = select(ManualVersion.product_id, ManualVersion.sha256, ManualVersion.text).join(
        newest, and_(newest.c.product_id == ManualVersion.product_id, newest.c.v == ManualVersion.version)
    )
    return {p: (sha, text) for p, sha, text in session.execute(stmt)}


def streams(session: Session) -> Streams:
    """Known products and lines, for the dashboard's filters."""
    products = list(session.scalars(select(Product.id).order_by(Product.id)))
    lines = sorted({line for (line,) in session.execute(select(InspectionCount.line).distinct())})
    return Streams(products, lines)
