"""Drift checks through the store: verdicts recorded by a real model, checked, events written."""

from __future__ import annotations

import io
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from inspector.drift import output_drift, review_disagreement, run_drift_check
from inspector.engine import Engine
from inspector.recorder import Capture, Recorder
from inspector.settings import DriftSettings
from inspector.store.files import ImageStore
from inspector.store.migrate import upgrade
from inspector.store.monitoring import drift_events
from inspector.store.rows import InspectionRow, JudgedPart, ReviewedPart, ReviewRow
from inspector.store.session import make_engine, session_factory
from tests.helpers.shifts import darker
from tests.helpers.synthetic import make_image

# within the checks' lookback (7 days) whenever the suite runs; a fixed date fell out of it one day
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _record(recorder: Recorder, engine: Engine, line: str, images: list[np.ndarray], start: int) -> None:
    rgb = [np.repeat(im[..., None], 3, axis=2) for im in images]
    for i in range(0, len(rgb), 32):
        chunk = rgb[i : i + 32]
        verdicts = engine.inspect_arrays("washer", chunk)
        caps = [
            Capture(f"{line}-{start + i + k}", _png(im), T0 + timedelta(seconds=start + i + k), line=line)
            for k, im in enumerate(chunk)
        ]
        recorder.record("washer", caps, verdicts)


def test_drift_check_flags_the_darkened_line_only(trained_model, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    db = make_engine(url)
    sessions = session_factory(db)
    engine = Engine(trained_model, "cpu")
    assert engine.reference is not None, "training writes the drift reference beside the model"
    recorder = Recorder(sessions, ImageStore(tmp_path / "images"), engine)
    rng = np.random.default_rng(7)
    normal = [make_image("ok", rng) for _ in range(160)]
    _record(recorder, engine, "L1", normal, 0)
    _record(recorder, engine, "L2", normal[:100] + [darker(im) for im in normal[100:]], 1000)

    cfg = DriftSettings(window=60, min_window=30, baseline=100, min_baseline=50, permutations=1000)
    with sessions() as s:
        events = run_drift_check(s, cfg)
        stored = drift_events(s)
    db.dispose()
    assert len(stored) == len(events) > 0
    assert sorted(stored, key=lambda e: e.id) == events  # what the check returns is what it stored
    by_line = {line: {e.metric: e for e in events if e.line == line} for line in ("L1", "L2")}
    assert by_line["L2"]["psi_brightness"].severity == "high"
    assert "embedding_mmd" not in by_line["L2"] or by_line["L2"]["embedding_mmd"].severity != "ok"
    assert [m for m, e in by_line["L1"].items() if e.severity == "high"] == []
    assert {"psi_brightness", "psi_contrast", "psi_sharpness", "defect_rate_cusum"} <= set(by_line["L1"])
    e = by_line["L2"]["psi_brightness"]
    assert e.window_start == T0 + timedelta(seconds=1100) and e.details["window"] == 60


def _rows(n, defect_share, conf=0.9, review_share=0.0, rng=None):
    rng = rng or np.random.default_rng(0)
    out = []
    for _ in range(n):
        r = rng.random()
        verdict = "reject" if r < defect_share else "review" if r < defect_share + review_share else "accept"
        defect_type = "scratch" if verdict == "reject" else None
        out.append(JudgedPart(len(out), T0, verdict, defect_type, conf, None, None, None, None, None, None))
    return out


def test_output_drift_sees_reject_rate_confidence_and_review_share():
    cfg = DriftSettings()
    rng = np.random.default_rng(0)
    baseline = _rows(1000, 0.05, rng=rng)
    calm = {f.metric: f.severity for f in output_drift(_rows(200, 0.05, rng=rng), baseline, cfg)}
    assert set(calm.values()) == {"ok"}, calm
    bad = {f.metric: f.severity for f in output_drift(_rows(200, 0.2, 0.7, 0.2, rng), baseline, cfg)}
    assert bad["defect_rate_cusum"] == "high"
    assert bad["confidence_drop"] == "high"
    assert bad["review_rise"] == "high"
    assert bad["defect_type_psi"] == "high"


def _reviewed(verdict: str, label: str) -> ReviewedPart:
    part = InspectionRow(**{f.name: None for f in fields(InspectionRow)} | {"verdict": verdict})
    return ReviewedPart(part, ReviewRow(0, 0, "anna", label, None, None, datetime.now(UTC)))


def test_review_disagreement():
    cfg = DriftSettings(min_reviews=10)
    agree = [_reviewed("accept", "ok")] * 18 + [_reviewed("reject", "ok")] * 2
    assert review_disagreement(agree, cfg).severity == "warn"  # 10 % overturned
    overturned = [_reviewed("accept", "defect")] * 10 + agree
    assert review_disagreement(overturned, cfg).severity == "high"
    assert review_disagreement(agree[:5], cfg) is None  # too few to say
