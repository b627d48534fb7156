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


def test_spot_checks_are_a_fixed_random_share_of_accepted_parts(trained_model, tmp_path):
    import uuid

    from inspector.engine import Engine
    from inspector.recorder import Capture, Recorder, spot_checked
    from inspector.store.base import utcnow
    from inspector.store.migrate import upgrade
    from tests.helpers.synthetic import make_image

    ids = [str(uuid.UUID(int=i)) for i in range(20_000)]
    picked = sum(spot_checked(i, 0.05) for i in ids)
    assert 900 < picked < 1100  # 5 % of 20,000, and the same ids every time
    assert picked == sum(spot_checked(i, 0.05) for i in ids) and not any(spot_checked(i, 0.0) for i in ids)

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    db = make_engine(url)
    engine = Engine(trained_model, "cpu")
    rng = np.random.default_rng(3)
    images = [np.repeat(make_image(kind, rng)[..., None], 3, axis=2) for kind in ("ok", "scratch") * 8]
    verdicts = engine.inspect_arrays("washer", images)
    captures = [Capture(f"p{i}", b"", utcnow()) for i in range(len(images))]
    for share, tag in ((1.0, "all"), (0.0, "none")):
        recorder = Recorder(session_factory(db), ImageStore(tmp_path / "images"), engine, spot_check_share=share)
        recorder.record("washer", captures, verdicts, [f"{tag}-{i}" for i in range(len(images))])
    with session_factory(db)() as s:
        rows = {r.uuid: r for r in s.scalars(select(Inspection))}
    db.dispose()
    assert {v.verdict for v in verdicts} >= {"accept", "reject"}
    for i, v in enumerate(verdicts):
        assert rows[f"all-{i}"].spot_check == (v.verdict == "accept")  # a spot check is an accepted part
        assert not rows[f"none-{i}"].spot_check
