"""The results store: SQLAlchemy 2 tables, engine setup, write and query functions, image files.

Importing this package registers every table on ``Base.metadata`` (Alembic compares against it).
"""

from inspector.store.base import Base
from inspector.store.catalog import ManualVersion, Product
from inspector.store.inspections import REVIEW_LABELS, VERDICTS, Inspection, Review
from inspector.store.modeling import MODEL_STATUSES, ModelVersion, RetrainRun
from inspector.store.operations import ROLES, ApiKey, AuditEntry, DriftEvent, User
from inspector.store.rollup import InspectionCount
from inspector.store.scheduling import SCHEDULER_JOBS, Lease
from inspector.store.signals import InspectionSignal

__all__ = [
    "MODEL_STATUSES",
    "REVIEW_LABELS",
    "ROLES",
    "SCHEDULER_JOBS",
    "VERDICTS",
    "ApiKey",
    "AuditEntry",
    "Base",
    "DriftEvent",
    "Inspection",
    "InspectionCount",
    "InspectionSignal",
    "Lease",
    "ManualVersion",
    "ModelVersion",
    "Product",
    "RetrainRun",
    "Review",
    "User",
]
