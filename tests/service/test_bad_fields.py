"""One malformed request never fails its neighbours: fields the store would refuse are refused
at the door (422, nothing accepted), a record that still cannot be stored is stored as an error
inspection saying why, and the station's own line and station are recorded when a request
names none. Issue #14, items 1 and 3."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inspector.recorder import Capture
from inspector.service.app import asgi_app
from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.helpers.synthetic import make_image
from tests.service.conftest import png_bytes


def stored(service) -> list[Inspection]:
    with session_factory(service.db_engine)() as s:
        return s.scalars(select(Inspection).order_by(Inspection.id)).all()


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("part_serial=" + "S" * 129, "part_serial"),
        ("line=" + "L" * 65, "line"),
        ("camera=c%00x", "control character"),
        ("station=a%0Ab", "control character"),
    ],
)
def test_bad_fields_are_refused_before_the_image_is_accepted(client, service, query, why):
    r = client.post(f"/v1/inspect?product=washer&{query}", content=png_bytes(), headers={"Content-Type": "image/png"})
    assert r.status_code == 422 and why in r.json()["error"]
    assert stored(service) == [] and len(service.worker.spool) == 0


def test_valid_neighbours_of_bad_requests_are_all_stored(client, service):
    def post(i: int) -> int:
        bad = i % 3 == 0
        q = "part_serial=" + ("S" * 200 if bad else f"SN{i}")
        return client.post(f"/v1/inspect?product=washer&{q}", content=png_bytes("spot", i),
                           headers={"Content-Type": "image/png"}).status_code  # fmt: skip

    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(post, range(30)))
    assert codes.count(422) == 10 and codes.count(200) == 20
    assert len(stored(service)) == 20 and len(service.worker.spool) == 0


def test_a_record_the_store_refuses_becomes_an_error_row_not_a_stuck_batch(service):
    """Past the door (a hot-folder name, a camera id): the rest of the batch is stored."""
    rec = service.worker.recorder
    engine = service.worker.engine

    rgb = np.repeat(make_image("ok", np.random.default_rng(1))[..., None], 3, 2)
    verdicts = engine.inspect_arrays("washer", [rgb, rgb])
    caps = [Capture("good", png_bytes(), camera="c1"), Capture("bad", png_bytes(), camera="c\x00" + "x" * 90)]
    rec.record("washer", caps, verdicts)
    rows = stored(service)
    assert rows[0].verdict != "error" and rows[1].verdict == "error"
    assert "invalid record: camera" in rows[1].error and "\x00" not in rows[1].camera and len(rows[1].camera) <= 64


def test_the_stations_line_and_station_are_recorded_when_a_request_names_none(service):
    app = asgi_app(service, line="L1", station="S1")
    with TestClient(app) as c:
        own = c.post("/v1/inspect?product=washer", content=png_bytes(), headers={"Content-Type": "image/png"})
        named = c.post("/v1/inspect?product=washer&line=L9", content=png_bytes(), headers={"Content-Type": "image/png"})
    assert own.status_code == named.status_code == 200
    rows = stored(service)
    assert [(r.line, r.station) for r in rows] == [("L1", "S1"), ("L9", "S1")]


def test_a_failed_batch_is_counted_shown_and_buried_after_three_tries(client, service, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(service.worker.engine, "inspect_prepared", broken)
    for _ in range(3):
        r = client.post("/v1/inspect?product=washer", content=png_bytes(), headers={"Content-Type": "image/png"})
        assert r.status_code == 500
    assert "inspector_failed_batches_total 3.0" in client.get("/metrics").text
    ready = client.get("/v1/ready")
    assert ready.status_code == 503 and "model exploded" in ready.json()["detail"]
    spool = service.worker.spool
    assert len(spool) == 3 and all(spool.attempts(p.stem) == 1 for p in spool.root.glob("*.job"))
    job = next(iter(spool.pending()))
    for _ in range(2):
        spool.failed(job, "again")
    assert spool.attempts(job.id) == 3
    spool.bury(job)
    assert (spool.root / "dead" / f"{job.id}.job").exists() and len(spool) == 2
