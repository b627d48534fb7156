"""The HTTP input against a real model and a real SQLite store."""

import hashlib
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from inspector.service.spool import Job
from inspector.service.worker import QueueFullError
from inspector.store import Inspection
from tests.helpers.waiting import wait_for
from tests.service.conftest import png_bytes

HEADERS = {"Content-Type": "image/png"}


def rows(service):
    from inspector.store.session import session_factory

    with session_factory(service.db_engine)() as s:
        return s.scalars(select(Inspection).order_by(Inspection.id)).all()


def test_raw_and_multipart_uploads_are_answered_after_being_stored(client, service):
    r = client.post(
        "/v1/inspect?product=washer&line=L1&station=S2&camera=c0&part_serial=SN1",
        content=png_bytes("scratch"),
        headers={"Content-Type": "image/png"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] in ("accept", "review", "reject") and body["model_version"] and body["latency_ms"] > 0
    m = client.post(
        "/v1/inspect",
        files={"image": ("a.png", png_bytes("ok"), "image/png")},
        data={"product": "washer", "line": "L2"},
    )
    assert m.status_code == 200, m.text
    stored = rows(service)
    assert [x.uuid for x in stored] == [body["inspection_id"], m.json()["inspection_id"]]
    assert (stored[0].line, stored[0].station, stored[0].part_serial, stored[1].line) == ("L1", "S2", "SN1", "L2")


def test_concurrent_requests_are_micro_batched(client, service):
    with ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(
                lambda i: (
                    client.post(
                        "/v1/inspect?product=washer",
                        content=png_bytes("spot", i),
                        headers={"Content-Type": "image/png"},
                    ).status_code
                ),
                range(32),
            )
        )
    assert codes == [200] * 32 and len(rows(service)) == 32
    metrics = client.get("/metrics").text
    assert "inspector_batch_size_count" in metrics
    sizes = service.worker.metrics.batch_size.collect()[0].samples
    count = next(s.value for s in sizes if s.name.endswith("_count"))
    assert count < 32  # several images shared a model call


def test_bad_requests_get_clear_json_errors(client, service):
    corrupt = client.post(
        "/v1/inspect?product=washer", content=b"\x89PNG\r\n\x1a\nbroken", headers={"Content-Type": "image/png"}
    )
    assert corrupt.status_code == 422 and corrupt.json()["verdict"] == "error"
    assert "corrupt" in corrupt.json()["error"] or "not an image" in corrupt.json()["error"]
    cases = [
        (
            client.post("/v1/inspect?product=gear", content=png_bytes(), headers={"Content-Type": "image/png"}),
            404,
            "unknown product 'gear'",
        ),
        (
            client.post("/v1/inspect", content=png_bytes(), headers={"Content-Type": "image/png"}),
            422,
            "missing field 'product'",
        ),
        (client.post("/v1/inspect?product=washer", json={"x": 1}), 415, "not an image"),
        (
            client.post("/v1/inspect?product=washer", content=b"", headers={"Content-Type": "image/png"}),
            422,
            "empty image",
        ),
        (
            client.post("/v1/inspect?product=washer", content=b"0" * (3 << 20), headers={"Content-Type": "image/png"}),
            413,
            "limit",
        ),
    ]
    for response, status, text in cases:
        assert response.status_code == status and text in response.json()["error"], response.text
    stored = rows(service)
    assert [r.verdict for r in stored] == ["error"]  # only the accepted image left a row
    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/v1/ready").status_code == 200


def test_full_queue_refuses_with_503_and_keeps_nothing(service_settings, trained_model):
    from inspector.service.app import build_service

    service = build_service(service_settings, trained_model, queue_size=2)
    worker = service.worker  # not started: the queue fills up
    for i in range(2):
        worker.submit(Job(id=f"j{i}", product="washer"), png_bytes())
    try:
        worker.submit(Job(id="j2", product="washer"), png_bytes())
        raise AssertionError("a full queue must refuse")
    except QueueFullError:
        pass
    assert len(worker.spool) == 2


def test_spooled_jobs_of_a_crashed_run_are_inspected_at_start(service_settings, trained_model):
    from inspector.service.app import build_service

    first = build_service(service_settings, trained_model)
    for i in range(5):  # accepted, then the process "died" before the worker ran
        first.worker.spool.put(Job(id=f"crash-{i}", product="washer"), png_bytes("spot", i))
    # more spooled than the queue holds (batches in flight were spooled too): start must not block
    second = build_service(service_settings, trained_model, max_batch=2, queue_size=2)
    second.worker.start()
    second.worker.stop(drain=True)
    assert sorted(r.uuid for r in rows(second)) == [f"crash-{i}" for i in range(5)]
    assert len(second.worker.spool) == 0


def test_the_answer_says_which_accepted_parts_are_spot_checks_as_stored(service_settings, trained_model):
    from fastapi.testclient import TestClient

    from inspector.service.app import asgi_app, build_service

    service_settings.verdict.spot_check_share = 1.0  # every accepted part, so both kinds show
    service = build_service(service_settings, trained_model, max_batch=8, max_wait_ms=20)
    with TestClient(asgi_app(service)) as client:
        answers = [
            client.post(
                f"/v1/inspect?product=washer&request_id=p{i}", content=png_bytes(kind, i), headers=HEADERS
            ).json()
            for i, kind in enumerate(["ok", "scratch"] * 3)
        ]
        replayed = client.post("/v1/inspect?product=washer&request_id=p0", content=png_bytes("ok", 0), headers=HEADERS)
    stored = {r.uuid: r.spot_check for r in rows(service)}
    assert {a["verdict"] for a in answers} >= {"accept", "reject"}
    for a in answers:
        assert a["spot_check"] == (a["verdict"] == "accept") == stored[a["inspection_id"]]
    assert replayed.json()["spot_check"] == answers[0]["spot_check"]  # a retry is answered as stored
    service.db_engine.dispose()


def test_a_parts_image_file_is_written_while_the_model_judges_it(client, service, monkeypatch):
    """The file is not on the line's path: it is written beside the model, and its row points at it."""
    data = png_bytes("spot", 7)
    path = service.worker.recorder.images.path(hashlib.sha256(data).hexdigest())
    engine = service.worker.engine
    inspect, on_disk = engine.inspect_prepared, []

    def judging(*args, **kwargs):
        on_disk.append(wait_for(path.exists, 10))
        return inspect(*args, **kwargs)

    monkeypatch.setattr(engine, "inspect_prepared", judging)
    r = client.post("/v1/inspect?product=washer", content=data, headers=HEADERS)
    assert r.status_code == 200, r.text
    assert on_disk == [True]
    assert [(x.uuid, x.image_uri) for x in rows(service)] == [(r.json()["inspection_id"], path.as_uri())]
    assert path.read_bytes() == data
