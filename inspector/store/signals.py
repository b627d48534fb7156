"""What drift checks (and the dashboard's heatmaps) read per inspection: a compact image
embedding, image statistics, the classifier's attention grid and the anomaly map.

Kept beside ``inspections`` rather than in it, so the dashboard's hot table stays narrow.
The embedding is the champion's pooled image feature projected onto the PCA of its reference
set (a few dozen float16 values), so drift compares like with like.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from inspector.store.base import Base


class InspectionSignal(Base):
    __tablename__ = "inspection_signals"

    inspection_uuid: Mapped[str] = mapped_column(
        String(36), ForeignKey("inspections.uuid", ondelete="CASCADE"), primary_key=True
    )
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float16, the model's projection
    brightness: Mapped[float]
    contrast: Mapped[float]
    sharpness: Mapped[float]
    width: Mapped[int]
    height: Mapped[int]
    # where the classifier looked for its verdict: a square grid of patch weights, float16 (dashboard heatmap)
    attention: Mapped[bytes | None] = mapped_column(LargeBinary)
    # the anomaly map as an 8-bit grayscale PNG; 128 = as strong as good parts reach at the target FRR
    anomaly_map: Mapped[bytes | None] = mapped_column(LargeBinary)
