"""Inspections (one row per verdict the line produced) and operator reviews of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from inspector.store.base import Base, BigId, Json, UTCDateTime, utcnow

# the line's decision (models.calibration.Thresholds.verdict) or error; a review labels the part itself
VERDICTS = ("accept", "review", "reject", "error")
REVIEW_LABELS = ("ok", "defect")
# the parts the review queue offers an operator, by kind -> (verdict, SQL its partial index and its
# query share: SQLite uses a partial index only for a query holding the very same terms)
OPEN_FOR_REVIEW = {
    "review": ("review", "verdict = 'review' AND reviewed_at IS NULL"),
    "spot_check": ("accept", "spot_check AND reviewed_at IS NULL"),
    "reject": ("reject", "verdict = 'reject' AND reviewed_at IS NULL"),
}


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        # the dashboard's queries: recent by product / line / verdict, counts per hour, review queue
        Index("ix_inspections_product_captured", "product_id", "captured_at"),
        Index("ix_inspections_line_captured", "line", "captured_at"),
        Index("ix_inspections_verdict_captured", "verdict", "captured_at"),
        # the review queue, one index per kind: only parts no operator has judged, so it never walks
        # what was judged (60,000 judged review verdicts took 270 ms on PostgreSQL before); keyed
        # by verdict too, as SQLite otherwise prefers ix_inspections_verdict_captured
        *(
            Index(
                f"ix_inspections_open_{kind}",
                "verdict",
                "captured_at",
                postgresql_where=text(where),
                sqlite_where=text(where),
            )
            for kind, (_, where) in OPEN_FOR_REVIEW.items()
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    line: Mapped[str] = mapped_column(String(64), default="")
    station: Mapped[str] = mapped_column(String(64), default="")
    camera: Mapped[str] = mapped_column(String(64), default="")
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    part_serial: Mapped[str | None] = mapped_column(String(128))
    image_uri: Mapped[str | None] = mapped_column(String(1000))
    image_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    image_size: Mapped[int | None]
    image_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verdict: Mapped[str] = mapped_column(
        Enum(*VERDICTS, name="verdict", native_enum=False, create_constraint=True, length=16)
    )
    defect_type: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None]
    defect_score: Mapped[float | None]  # the decision score the product's thresholds cut
    classifier_score: Mapped[float | None]  # the classifier's P(defect)
    anomaly_score: Mapped[float | None]  # the anomaly part's score: distance to the nearest good patch
    class_scores: Mapped[dict[str, Any] | None] = mapped_column(Json)
    image_only: Mapped[bool] = mapped_column(default=False)
    golden: Mapped[bool] = mapped_column(default=False)  # part of the product's fixed evaluation set
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    manual_version_id: Mapped[int | None] = mapped_column(ForeignKey("manual_versions.id"))
    latency_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    # the PLC handshake's window passed first: the line rejected the part fail-safe
    late: Mapped[bool] = mapped_column(default=False, server_default=false())
    # an accepted part picked at random for an operator to look at: what the station ships, measured
    spot_check: Mapped[bool] = mapped_column(default=False, server_default=false())
    # when an operator last judged the part (its latest review): set with every review
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Review(Base):
    """An operator's label for an inspection; several per inspection are allowed, the latest wins."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_inspection_created", "inspection_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(
        Enum(*REVIEW_LABELS, name="review_label", native_enum=False, create_constraint=True, length=16)
    )
    defect_type: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
