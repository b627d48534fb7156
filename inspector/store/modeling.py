"""Model versions (champion / challenger history) and retraining runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from inspector.store.base import Base, BigId, Json, UTCDateTime, utcnow

MODEL_STATUSES = ("candidate", "champion", "retired")


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    artifact_path: Mapped[str] = mapped_column(String(1000))
    card: Mapped[dict[str, Any]] = mapped_column(Json)
    metrics: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(
        Enum(*MODEL_STATUSES, name="model_status", native_enum=False, create_constraint=True, length=16),
        default="candidate",
        index=True,
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RetrainRun(Base):
    __tablename__ = "retrain_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    trigger: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_counts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    champion_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    challenger_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    champion_metrics: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    challenger_metrics: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    decision: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None]
