"""The PLC handshake on the real worker and store: results inside the window, fail-safe rejects
with the timeout code when the model is late, Fault after three in a row, and every triggered
part stored once (late ones marked late)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from inspector.service import handshake as hs
from inspector.service import line_state as ls
from inspector.service.app import asgi_app
from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.helpers.waiting import wait_for
from tests.service.conftest import png_bytes


def stored(service) -> list[Inspection]:
    with session_factory(service.db_engine)() as s:
        return list(s.scalars(select(Inspection).order_by(Inspection.id)))


@pytest.fixture
def running(service):
    service.worker.start()
    yield service
    service.worker.stop(drain=True)
    service.handshake.close()


def test_a_part_inside_its_window_gets_its_verdict_and_code(running):
    h = running.handshake
    h.windows_ms["washer"] = 60_000  # a slow CI machine still answers inside it
    h.select_product("washer")
    h.start()
    r = h.trigger(png_bytes("scratch"), part_serial="SN-1")
    assert h.snapshot().system_state == "ResultValid"  # until the PLC acknowledges
    assert not r.late and r.verdict in ("accept", "review", "reject")
    types = running.worker.engine.defect_types("washer")
    assert types == ["scratch", "spot"]
    assert r.result_code == (0 if r.verdict == "accept" else 1 + types.index(r.defect_type))
    with pytest.raises(ls.TriggerRefused) as busy:  # the result not acknowledged yet
        h.trigger(png_bytes("ok"))
    assert busy.value.code == ls.BUSY
    h.acknowledge()
    assert h.snapshot().ready
    rows = stored(running)
    assert [(x.uuid, x.part_serial, x.late) for x in rows] == [(r.inspection_id, "SN-1", False)]


def test_the_window_reaches_the_model_so_that_work_which_can_wait_does_not_make_the_part_late(running, monkeypatch):
    """The engine leaves out typing over turns where it would end after ``answer_by``
    (tests/inspector/test_engine.py); the handshake must tell it when the window ends."""
    engine = running.worker.engine
    inspect, seen = engine.inspect_prepared, []

    def spy(product, prepared, sizes, answer_by=None):
        seen.append(answer_by)
        return inspect(product, prepared, sizes, answer_by)

    monkeypatch.setattr(engine, "inspect_prepared", spy)
    h = running.handshake
    h.windows_ms["washer"] = 60_000
    h.select_product("washer")
    h.start()
    before = time.perf_counter()
    assert not h.trigger(png_bytes("scratch"), acknowledge=True).late
    after = time.perf_counter()
    assert len(seen) == 1 and before + 59 < seen[0] <= after + 60  # the window's end, less the store's time


def test_a_triggered_part_does_not_wait_to_fill_a_batch(running):
    """Parts from HTTP or a folder wait up to ``max_wait`` for company in a batch; a PLC holds one
    part in flight, so waiting for a second only spends its window."""
    running.worker.max_wait = 5.0
    h = running.handshake
    h.windows_ms["washer"] = 60_000
    h.select_product("washer")
    h.start()
    t0 = time.monotonic()
    r = h.trigger(png_bytes("scratch"), acknowledge=True)
    assert time.monotonic() - t0 < 4.0 and not r.late


def test_a_late_model_gives_failsafe_rejects_then_fault_and_the_parts_are_stored_late(running, monkeypatch):
    engine = running.worker.engine
    inspect = engine.inspect_prepared

    def slow(*args, **kwargs):
        time.sleep(0.6)
        return inspect(*args, **kwargs)

    monkeypatch.setattr(engine, "inspect_prepared", slow)
    h = running.handshake
    h.default_window_ms = 100
    h.select_product("washer")
    h.start()
    results = [h.trigger(png_bytes("ok", seed=i), part_serial=f"SN-{i}", acknowledge=i < 2) for i in range(3)]
    assert [(r.verdict, r.result_code, r.late) for r in results] == [("reject", ls.TIMEOUT, True)] * 3
    assert all(r.latency_ms < 400 for r in results)  # answered at the window, not when the model finished
    state = h.snapshot()
    assert state.state == "fault" and state.counters.timeouts == 3 and state.error_code == ls.FAULT
    assert state.result_valid and state.result == results[2]  # the third part's reject still reaches the PLC
    assert state.system_state == "Error" and not state.ready
    h.acknowledge()
    with pytest.raises(ls.TriggerRefused) as fault:
        h.trigger(png_bytes("ok"))
    assert fault.value.code == ls.FAULT
    assert wait_for(lambda: h.snapshot().counters.late_stored == 3)
    rows = stored(running)
    assert sorted(x.uuid for x in rows) == sorted(r.inspection_id for r in results)  # one row per part
    assert all(x.late for x in rows) and all(x.verdict != "error" for x in rows)
    h.reset()
    assert h.snapshot().state == "ready"


def test_unknown_product_and_stopped_station_are_refused_and_store_nothing(running):
    h = running.handshake
    with pytest.raises(ls.TriggerRefused) as stopped:
        h.trigger(png_bytes("ok"), product="washer")
    assert stopped.value.code == ls.STOPPED
    h.start()
    with pytest.raises(ls.TriggerRefused) as unknown:
        h.trigger(png_bytes("ok"), product="no-such-part")
    assert unknown.value.code == ls.UNKNOWN_PRODUCT
    with pytest.raises(ls.TriggerRefused) as no_image:
        h.trigger(None, product="washer")
    assert no_image.value.code == ls.NO_IMAGE
    assert h.snapshot().state == "ready" and stored(running) == []


def test_http_triggers_go_through_the_same_handshake(service):
    service.handshake.windows_ms["washer"] = 60_000
    with TestClient(asgi_app(service)) as client:
        ok = client.post("/v1/trigger?product=washer&part_serial=H-1", content=png_bytes("spot"))
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["part_serial"] == "H-1" and body["result_code"] in (0, 1, 2, ls.UNNAMED)
        unknown = client.post("/v1/trigger?product=nope", content=png_bytes("spot"))
        assert unknown.status_code == 404 and unknown.json()["code"] == ls.UNKNOWN_PRODUCT
        assert client.get("/v1/health").status_code == 200  # and the station keeps serving
    assert service.handshake.snapshot().counters.results == 1


def test_an_overloaded_station_rejects_failsafe_and_still_stores_the_part(running, monkeypatch):
    def full(job, data, answer_by=None):
        raise hs.QueueFullError("inspection queue is full")

    monkeypatch.setattr(running.worker, "submit", full)
    h = running.handshake
    h.start()
    r = h.trigger(png_bytes("ok"), part_serial="OV-1", product="washer", acknowledge=True)
    assert (r.verdict, r.result_code, r.late) == ("reject", ls.OVERLOADED, False)
    rows = stored(running)
    assert [(x.uuid, x.verdict, x.part_serial) for x in rows] == [(r.inspection_id, "error", "OV-1")]
    assert "queue is full" in rows[0].error


def test_an_mqtt_trigger_inspects_the_cameras_frame_through_the_handshake(service, tmp_path):
    """MQTT trigger -> handshake -> the camera's next frame -> one stored inspection with the
    message's serial. The camera is the one stand-in: a frame source with CameraInput's shape."""
    import socket
    import uuid

    import paho.mqtt.client as mqtt

    from inspector.service.camera import TriggeredCamera
    from inspector.service.mqtt import MqttPublisher

    try:
        socket.create_connection(("127.0.0.1", 1883), 1).close()
    except OSError:
        pytest.skip("Mosquitto not running on 127.0.0.1:1883")

    class FrameSource:
        mode, name, product = "trigger", "cam-test", "washer"
        line, station = f"L-{uuid.uuid4().hex[:6]}", "S1"

        def grab(self) -> bytes:
            return png_bytes("spot")

        def start(self) -> None: ...

        def stop(self) -> None: ...

    camera = FrameSource()
    service.handshake.windows_ms["washer"] = 60_000
    service.handshake.s.product = "washer"
    mqtt_out = MqttPublisher("127.0.0.1", 1883, tmp_path / "buf")
    with TestClient(asgi_app(service, mqtt=mqtt_out, adapters=[TriggeredCamera(camera, mqtt_out, service.handshake)])):
        assert wait_for(mqtt_out.client.is_connected, 10)
        time.sleep(0.3)
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sender.connect("127.0.0.1", 1883)
        sender.loop_start()
        sender.publish(f"inspector/{camera.line}/S1/trigger", "MQ-1", qos=1).wait_for_publish(5)
        assert wait_for(lambda: len(stored(service)) == 1)
        sender.loop_stop()
    rows = stored(service)
    assert [(x.part_serial, x.camera) for x in rows] == [("MQ-1", "cam-test")]
    assert service.handshake.snapshot().counters.results == 1


def test_a_window_the_model_cannot_meet_here_is_said_at_the_products_first_trigger(running, caplog):
    """Found at the door, not on the line: a window the model nearly fills on this machine makes
    triggers fail-safe timeouts and faults the station after three. Said once per product and
    model, when a PLC first triggers it (a station no PLC drives says nothing)."""
    h = running.handshake
    assert running.worker.engine.part_ms["washer"] > 0  # timed at warm-up, once warm
    h.windows_ms["washer"] = 0.001
    h.select_product("washer")
    with caplog.at_level("WARNING", logger="inspector.service.handshake"):
        h.start()
        assert not [r for r in caplog.records if "inspect window" in r.getMessage()]
        for i in range(2):
            h.trigger(png_bytes("ok", seed=i), acknowledge=True)
            h.reset()  # the late parts' Fault, should the second one be late too
    said = [r.getMessage() for r in caplog.records if "inspect window" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("washer: the model alone takes ")
    assert "ms of its 0.001 ms inspect window" in said[0] and "3 in a row a Fault" in said[0]


def test_a_window_the_model_meets_here_says_nothing(running, caplog):
    h = running.handshake
    h.windows_ms["washer"] = 600_000
    h.select_product("washer")
    h.start()
    with caplog.at_level("WARNING", logger="inspector.service.handshake"):
        assert not h.trigger(png_bytes("ok"), acknowledge=True).late
    assert not [r for r in caplog.records if "inspect window" in r.getMessage()]
