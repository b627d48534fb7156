"""What the store's read queries return: frozen rows read by attribute, never ORM objects (nothing
lazy-loads outside a session) and never dicts (a renamed column fails where it is read, in a type
check or at import, not as a KeyError on a dashboard page)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

from inspector.store.catalog import ManualVersion
from inspector.store.inspections import Inspection, Review
from inspector.store.modeling import ModelVersion, RetrainRun
from inspector.store.operations import ApiKey, DriftEvent, User


def _columns(cls: type, obj: object) -> dict[str, Any]:
    """The values of ``obj`` (an ORM row) for the fields of the dataclass ``cls``."""
    return {f.name: getattr(obj, f.name) for f in fields(cls)}


@dataclass(frozen=True, slots=True)
class InspectionRow:
    """One inspection as stored: every column of ``inspections``."""

    id: int
    uuid: str
    captured_at: datetime
    received_at: datetime
    line: str
    station: str
    camera: str
    product_id: str
    part_serial: str | None
    image_uri: str | None
    image_sha256: str | None
    image_size: int | None
    image_purged_at: datetime | None
    verdict: str
    defect_type: str | None
    confidence: float | None
    defect_score: float | None
    classifier_score: float | None
    anomaly_score: float | None
    class_scores: dict[str, Any] | None
    image_only: bool
    golden: bool
    model_version_id: int | None
    manual_version_id: int | None
    latency_ms: float | None
    error: str | None
    late: bool
    spot_check: bool
    reviewed_at: datetime | None

    @classmethod
    def of(cls, obj: Inspection, **extra: Any) -> Self:
        """The row of ``obj``; a subclass's own fields come as ``extra``."""
        return cls(**_columns(InspectionRow, obj), **extra)


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """An operator's label for an inspection."""

    id: int
    inspection_id: int
    reviewer: str
    label: str
    defect_type: str | None
    comment: str | None
    created_at: datetime

    @classmethod
    def of(cls, obj: Review) -> ReviewRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class InspectionDetail(InspectionRow):
    """One inspection with what its detail view shows: reviews (newest first), the manual it was
    judged against, and the attention grid and anomaly map (encoded as ``inspection_signals``)."""

    reviews: list[ReviewRow]
    manual_text: str | None
    manual_version: int | None
    attention: bytes | None
    anomaly_map: bytes | None


@dataclass(frozen=True, slots=True)
class ReviewedPart:
    """A reviewed inspection and its latest review: the label retraining and drift learn from."""

    part: InspectionRow
    review: ReviewRow


@dataclass(frozen=True, slots=True)
class ManualVersionRow:
    version: int
    text: str
    author: str
    created_at: datetime
    sha256: str

    @classmethod
    def of(cls, obj: ManualVersion) -> ManualVersionRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class ProductOverview:
    id: str
    name: str
    active: bool
    manuals: list[ManualVersionRow]  # newest first


@dataclass(frozen=True, slots=True)
class Streams:
    """The products and lines the store knows, for filters."""

    products: list[str]
    lines: list[str]


@dataclass(frozen=True, slots=True)
class ModelVersionRow:
    """A registered model version (its card stays in the store, not in the listing)."""

    id: int
    name: str
    status: str
    artifact_path: str
    metrics: dict[str, Any]
    created_at: datetime
    promoted_at: datetime | None

    @classmethod
    def of(cls, obj: ModelVersion) -> ModelVersionRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class RetrainRunRow:
    """One retraining run: what it learnt from, both models' metrics and the promotion decision."""

    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    data_counts: dict[str, Any]
    champion_id: int | None
    challenger_id: int | None
    champion_metrics: dict[str, Any]
    challenger_metrics: dict[str, Any]
    decision: str | None
    reason: str | None
    duration_s: float | None

    @classmethod
    def of(cls, obj: RetrainRun) -> RetrainRunRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class JudgedPart:
    """One judged inspection of a stream as the drift checks read it: the verdict and, where the
    station stored them, its drift signals (the outer join leaves them None when it did not)."""

    id: int
    captured_at: datetime
    verdict: str
    defect_type: str | None
    confidence: float | None
    embedding: bytes | None  # float16, the champion's projection of the pooled image feature
    brightness: float | None
    contrast: float | None
    sharpness: float | None
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class DriftEventRow:
    """One drift check of one stream and metric; ``details`` says what the metric saw (its keys
    differ by metric: docs/drift.md)."""

    id: int
    product_id: str | None
    line: str | None
    metric: str
    value: float
    threshold: float
    severity: str
    window_start: datetime
    window_end: datetime
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, obj: DriftEvent) -> DriftEventRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """An API key as listed: its name, the first characters that identify it, never the key."""

    name: str
    prefix: str
    lines: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, obj: ApiKey) -> ApiKeyRow:
        return cls(**_columns(cls, obj))


@dataclass(frozen=True, slots=True)
class UserRow:
    """A dashboard user as listed (never the password hash)."""

    username: str
    role: str
    active: bool

    @classmethod
    def of(cls, obj: User) -> UserRow:
        return cls(**_columns(cls, obj))
