"""A real SQLite station database, seeded, for the dashboard's pages (AppTest) and the browser test."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.services import create_user
from inspector.store import InspectionSignal
from inspector.store.files import ImageStore
from inspector.store.migrate import upgrade
from inspector.store.monitoring import record_drift_events
from inspector.store.repo import add_manual_version, ensure_product, promote_model, record_inspections, register_model
from inspector.store.session import make_engine, session_factory
from tests.helpers.factories import inspection_rows
from tests.helpers.synthetic import MANUAL, make_image

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "pages"
APP = PAGES.parent / "app.py"
N = 600
PASSWORDS = {"olga": "operator-pass-1", "erik": "engineer-pass-1"}
TILE_MANUAL = MANUAL.format(product="tile").replace("### scratch", "### crack").replace("### spot", "### blowhole")


def _anomaly_map() -> bytes:
    """A 12x12 map as the recorder stores it: 128 = rejects on its own; one hot corner."""
    grid = np.full((12, 12), 40, np.uint8)
    grid[1:4, 8:11] = 230
    buf = io.BytesIO()
    Image.fromarray(grid, mode="L").save(buf, "PNG")
    return buf.getvalue()


ANOMALY_MAP = _anomaly_map()


def _card(home: Path) -> dict:
    """The champion's stored card (``ModelCard.summary``): tile's threshold stands on two lightings
    of one tile, one image still on this machine, the other gone."""
    setter = home / "data" / "tile" / "images" / "ok" / "tile096_a.png"
    setter.parent.mkdir(parents=True)
    (home / "data" / "tile" / "manual.md").write_text(TILE_MANUAL)
    Image.fromarray(make_image("spot", np.random.default_rng(1))).save(setter)
    basis = {
        "set_by": [
            {"image": str(setter), "part": "tile096", "score": 1.49},
            {"image": str(setter.with_name("tile096_b.png")), "part": "tile096", "score": 1.47},
        ],
        "reject_without": 1.42, "val_escape": 0.5, "val_escape_without": 0.45,
    }  # fmt: skip
    thresholds = {"warn": 1.2, "reject": 1.47, "target_frr": 0.01, "n_good": 205, "guaranteed": True}
    tile = {"classes": ["ok", "crack", "blowhole"], "decision": {"thresholds": thresholds, "basis": basis}}
    return {"format": 7, "products": {"tile": tile}}


def seed(home: Path) -> dict:
    url = f"sqlite:///{home / 'inspector.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    store = ImageStore(home / "images")
    now = datetime.now(UTC).replace(microsecond=0)
    rows = inspection_rows(N, seed=3, start=now - timedelta(days=2), step_s=240)
    rng = np.random.default_rng(0)
    for r in rows:  # real image files, as the station stores them
        buf = io.BytesIO()
        Image.fromarray(make_image("spot" if r["verdict"] != "accept" else "ok", rng)).save(buf, "PNG")
        img = store.put(buf.getvalue())
        r.update(image_uri=img.uri, image_sha256=img.sha256, image_size=img.size)
    for r in rows:
        if r["product_id"] == "tile" and r["defect_type"] not in (None, "crack", "blowhole"):
            r["defect_type"] = "crack"
    with sessions() as s:
        for p in ("tile", "pcb"):
            ensure_product(s, p)
        mv = add_manual_version(s, "tile", TILE_MANUAL, "setup")
        add_manual_version(s, "tile", TILE_MANUAL.replace("reject any", "reject every"), "setup")
        for r in rows:
            r["manual_version_id"] = mv.id if r["product_id"] == "tile" else None
        record_inspections(s, rows)
        s.flush()
        att = np.linspace(0, 1, 49).astype("<f2").tobytes()
        s.add_all(
            InspectionSignal(
                inspection_uuid=r["uuid"], brightness=0.5, contrast=0.1, sharpness=0.01, width=96, height=96,
                attention=att, anomaly_map=ANOMALY_MAP if i >= 20 else None,
            )
            for i, r in enumerate(rows[-40:])
        )  # fmt: skip
        a = register_model(s, "first@2026-11-01", "/models/first", {})
        held_out = {"tile": {"n": 120, "escape_rate": 0.05, "false_reject_rate": 0.008, "target_frr": 0.01,
                             "frr_bound": 0.029, "auroc": 0.987, "defect_type_macro_f1": 0.91}}  # fmt: skip
        b = register_model(s, "second@2026-11-10", "/models/second", _card(home), {"test": held_out})
        promote_model(s, a.id, "setup")
        promote_model(s, b.id, "setup")
        register_model(s, "challenger-3@2026-11-20", "/models/c3", {})
        events = []
        for k in range(5):
            at = now - timedelta(hours=5 - k)
            for metric, value, sev in (("psi_brightness", 0.02 * k, "ok"), ("embedding_mmd", 0.5 / (k + 1), "ok")):
                events.append(
                    {"product_id": "tile", "line": "L1", "metric": metric, "value": value, "threshold": 0.1,
                     "severity": sev, "window_start": at, "window_end": at, "details": {}, "created_at": at}
                )  # fmt: skip
        events[-1]["severity"] = "high"
        record_drift_events(s, events)
        for name, password in PASSWORDS.items():
            create_user(s, name, password, "operator" if name == "olga" else "engineer")
        s.commit()
    engine.dispose()
    return {"url": url, "rows": rows, "now": now}


@pytest.fixture
def station(tmp_path, monkeypatch):
    info = seed(tmp_path)
    monkeypatch.setenv("INSPECTOR_HOME", str(tmp_path))
    monkeypatch.delenv("INSPECTOR_DATABASE_URL", raising=False)
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield {**info, "home": tmp_path}
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def _keep_main_module():
    """AppTest runs each page as ``__main__`` and leaves it there; multiprocessing's spawn (used
    by later store tests) would then re-run a page script in every child. Put the real one back."""
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
