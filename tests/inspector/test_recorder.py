"""Verdicts from the CLI land in the store: images by hash, rows with model and manual versions."""

import io
import json

import numpy as np
from PIL import Image
from sqlalchemy import select

from inspector.cli import main
from inspector.dataset import load_dataset
from inspector.store import Inspection, InspectionSignal, ManualVersion, ModelVersion
from inspector.store.files import ImageStore
from inspector.store.session import make_engine, session_factory


def test_inspect_record_stores_every_image_and_verdict(trained_model, synthetic_root, home, tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATABASE_URL", f"sqlite:///{tmp_path / 'line.db'}")
    from inspector.settings import get_settings

    get_settings.cache_clear()
    paths = [s.path for s in load_dataset(synthetic_root).split("test")][:5]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    try:
        code = main(
            [
                "inspect",
                "--product",
                "washer",
                "--home",
                str(tmp_path),
                "--model",
                str(trained_model),
                "--record",
                "--line",
                "L7",
                "--json",
                *map(str, paths),
                str(broken),
            ]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'line.db'}")
    with session_factory(engine)() as s:
        rows = s.scalars(select(Inspection).order_by(Inspection.id)).all()
        assert len(rows) == 6 and {r.line for r in rows} == {"L7"}
        assert [r.verdict for r in rows][-1] == "error" and "broken.png" in rows[-1].error
        assert all(r.verdict in ("accept", "review", "reject") for r in rows[:-1])
        model = s.scalar(select(ModelVersion))
        assert model.status == "champion" and all(r.model_version_id == model.id for r in rows)
        manual = s.scalar(select(ManualVersion))
        assert manual.product_id == "washer" and rows[0].manual_version_id == manual.id
        store = ImageStore(tmp_path / "images")
        assert store.read(rows[0].image_sha256) == paths[0].read_bytes()
        assert store.read(rows[-1].image_sha256) == b"not a png"  # kept for the audit trail
        assert json.dumps(rows[0].class_scores)
        judged = rows[:-1]
        assert all(r.defect_score is not None and r.anomaly_score is not None for r in judged)
        assert all(0 <= r.classifier_score <= 1 for r in judged)
        for r in judged:  # the anomaly map, stored as a small PNG beside the row (128 = rejects alone)
            png = s.get(InspectionSignal, r.uuid).anomaly_map
            grid = np.asarray(Image.open(io.BytesIO(png)))
            assert grid.ndim == 2 and min(grid.shape) >= 8 and len(png) < 4000
        defects = [r for r in judged if r.verdict == "reject"]
        if defects:
            assert max(np.asarray(Image.open(io.BytesIO(s.get(InspectionSignal, r.uuid).anomaly_map))).max()
                       for r in defects) > 128  # fmt: skip
    engine.dispose()
