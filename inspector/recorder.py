"""Turn the engine's verdicts into stored inspection records (image file first, then the row).

The engine's verdict (accept / review / reject) is stored as it is, plus error for an image
that could not be inspected (its bytes are kept when readable).
"""

from __future__ import annotations

import hashlib
import io
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from inspector.engine import Engine, Signals, Verdict
from inspector.store import Inspection, ModelVersion
from inspector.store.base import utcnow
from inspector.store.files import ImageStore, StoredImage
from inspector.store.repo import (
    InspectionRecord,
    add_manual_version,
    ensure_product,
    promote_model,
    record_inspections,
    record_signals,
    register_model,
    text_limit,
)


@dataclass
class Capture:
    """One image as the line delivered it."""

    source: str
    data: bytes | None
    captured_at: datetime | None = None
    line: str = ""
    station: str = ""
    camera: str = ""
    part_serial: str | None = None
    stored: StoredImage | None = None  # ``data`` already in the image store (written while the model ran)


def map_png(anomaly_map: np.ndarray | None) -> bytes | None:
    """An anomaly map relative to its product's reference (1.0 = rejects on its own) as an 8-bit
    grayscale PNG where 128 is that line: a few hundred bytes that any image viewer opens."""
    if anomaly_map is None:
        return None
    grey = np.clip(np.nan_to_num(anomaly_map) * 128, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def storable(row: dict) -> dict:
    """``row`` if the store accepts it; else an ``error`` row that says why, with the offending
    text made storable. One bad record must not fail the rows stored beside it, nor stay in the
    spool to fail again at every restart."""
    try:
        InspectionRecord.model_validate(row)
        return row
    except ValidationError as exc:
        first = exc.errors()[0]
        why = f"invalid record: {'.'.join(map(str, first['loc']))}: {first['msg']}"
    clean = dict(row)
    for key in ("line", "station", "camera", "part_serial", "defect_type"):
        if isinstance(clean.get(key), str):
            clean[key] = "".join(c for c in clean[key] if c.isprintable())[: text_limit(key)]
    for key in ("defect_type", "confidence", "defect_score", "classifier_score", "anomaly_score", "class_scores"):
        clean[key] = None
    clean.update(verdict="error", error=(f"{why}; " + (row.get("error") or "")).replace("\x00", "")[:20_000])
    return clean


def signal_row(uuid: str, sig: Signals, attention=None, anomaly_map=None) -> dict:
    emb = None if sig.embedding is None else sig.embedding.astype("<f2").tobytes()
    return {
        "attention": None if attention is None else attention.astype("<f2").tobytes(),
        "anomaly_map": map_png(anomaly_map),
        "inspection_uuid": uuid,
        "embedding": emb,
        "brightness": sig.brightness,
        "contrast": sig.contrast,
        "sharpness": sig.sharpness,
        "width": sig.width,
        "height": sig.height,
    }


class Recorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        images: ImageStore,
        engine: Engine,
        actor: str = "inspector",
        promote: bool = False,
        model_id: int | None = None,
        spot_check_share: float = 0.0,
    ) -> None:
        """``model_id``: the engine's model as the store knows it (the champion being loaded);
        without it the model is registered by name, ``promote`` makes it the champion (the
        first one always is)."""
        self.sessions, self.images, self.engine, self.actor = sessions, images, engine, actor
        self.spot_check_share = spot_check_share
        self._manual_ids: dict[str, int] = {}
        self.model_id = model_id if model_id is not None else self._register_model(promote)
        with sessions() as s:
            self.model_name = s.get(ModelVersion, self.model_id).name  # what answers and rows call it

    def _register_model(self, promote: bool) -> int:
        name = self.engine.version
        with self.sessions() as s:
            mv = s.scalar(select(ModelVersion).where(ModelVersion.name == name))
            if mv is None:
                path = str(self.engine.model_dir.resolve())
                mv = register_model(s, name, path, self.engine.card.summary(), self.engine.card.metrics)
            no_champion = s.scalar(select(ModelVersion.id).where(ModelVersion.status == "champion")) is None
            if mv.status != "champion" and (promote or no_champion):
                promote_model(s, mv.id, self.actor)
            s.commit()
            return mv.id

    def _manual_id(self, s: Session, product: str) -> int | None:
        manual = self.engine.manual(product)
        if manual is None:
            ensure_product(s, product)
            return None
        key = f"{product}:{manual.sha256}"
        if key not in self._manual_ids:
            ensure_product(s, product, manual.name)
            self._manual_ids[key] = add_manual_version(s, product, manual.text, self.actor).id
        return self._manual_ids[key]

    def record(
        self, product: str, captures: list[Capture], results: list[Verdict | Exception], ids: list[str] | None = None
    ) -> list[str]:
        """Store images and one inspection row per capture. -> the inspections' uuids.

        With ``ids`` the call is idempotent: rows already stored under those ids are skipped, so
        a job replayed after a crash between the insert and its acknowledgement is not doubled.
        """
        ids = ids or [str(uuidlib.uuid4()) for _ in captures]
        rows, signals = [], {}
        written = self.images.put_many([None if cap.stored else cap.data or None for cap in captures])
        stored_images = [cap.stored or image for cap, image in zip(captures, written, strict=True)]
        for uid, cap, res, image in zip(ids, captures, results, stored_images, strict=True):
            row = {
                "uuid": uid,
                "captured_at": cap.captured_at or utcnow(),
                "line": cap.line,
                "station": cap.station,
                "camera": cap.camera,
                "product_id": product,
                "part_serial": cap.part_serial,
                "image_uri": image.uri if image else None,
                "image_sha256": image.sha256 if image else None,
                "image_size": image.size if image else None,
                "model_version_id": self.model_id,
            }
            if isinstance(res, Verdict):
                row.update(
                    verdict=res.verdict,
                    defect_type=res.defect_type,
                    confidence=res.confidence,
                    defect_score=res.defect_score,
                    classifier_score=res.classifier_score,
                    anomaly_score=res.anomaly_score,
                    class_scores=res.class_scores or None,
                    image_only=res.image_only,
                    latency_ms=res.latency_ms,
                    spot_check=res.verdict == "accept" and spot_checked(uid, self.spot_check_share),
                )
                if res.signals is not None:
                    signals[uid] = signal_row(uid, res.signals, res.attention, res.anomaly_map)
            else:
                row.update(verdict="error", error=f"{cap.source}: {res}"[:20_000])
            rows.append(storable(row))
        with self.sessions() as s:
            manual_id = self._manual_id(s, product)
            stored = set(s.scalars(select(Inspection.uuid).where(Inspection.uuid.in_(ids))))
            rows = [r for r in rows if r["uuid"] not in stored]
            for row in rows:
                row["manual_version_id"] = manual_id if row["verdict"] != "error" else None
            record_inspections(s, rows)
            record_signals(s, [signals[r["uuid"]] for r in rows if r["uuid"] in signals])
            s.commit()
        return ids


def stored_outcome(sessions: sessionmaker[Session], uuid: str) -> dict | None:
    """The stored verdict of inspection ``uuid`` (what a retried request is answered with), or None."""
    with sessions() as s:
        row = s.scalar(select(Inspection).where(Inspection.uuid == uuid))
        if row is None:
            return None
        version = s.get(ModelVersion, row.model_version_id) if row.model_version_id else None
        fields = ("verdict", "defect_type", "confidence", "defect_score", "classifier_score", "anomaly_score")
        return {
            "inspection_id": row.uuid,
            "product": row.product_id,
            **{k: getattr(row, k) for k in fields},
            "image_only": row.image_only,
            "model_version": version.name if version else "",
            "latency_ms": row.latency_ms or 0.0,
            "error": row.error,
            "spot_check": row.spot_check,
        }


def spot_checked(uuid: str, share: float) -> bool:
    """Whether an accepted part goes to review as a spot check: a fixed share of parts by a hash of
    the inspection's id, so the pick never looks at the part (a review of the doubtful ones only
    would say nothing about what the station ships) and a replayed job is picked the same way."""
    return int.from_bytes(hashlib.sha1(uuid.encode()).digest()[:4], "big") < share * 2**32


def open_recorder(settings, engine: Engine) -> Recorder:
    """A Recorder on the configured database (migrated to head first) and image folder."""
    from inspector.store.migrate import upgrade
    from inspector.store.session import make_engine, session_factory

    upgrade(settings.database_url)
    return Recorder(
        session_factory(make_engine(settings.database_url)),
        ImageStore(settings.images_dir),
        engine,
        spot_check_share=settings.verdict.spot_check_share,
    )
