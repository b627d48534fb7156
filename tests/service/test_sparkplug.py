"""Sparkplug B on the local Mosquitto: a subscriber decodes NBIRTH/DBIRTH and a DDATA per
stored inspection, a rebirth follows NCMD, and the broker announces NDEATH (the MQTT will, with
the birth's bdSeq) when the station's process is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from inspector.service.sparkplug import BY_NAME, SparkplugNode, payload_class

HOST, PORT = "127.0.0.1", 1883


def broker_up() -> bool:
    try:
        socket.create_connection((HOST, PORT), timeout=1).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not broker_up(), reason="no MQTT broker on 127.0.0.1:1883")


class Host:
    """A Sparkplug host application's view: every message of one group, decoded."""

    def __init__(self, group: str) -> None:
        self.P, self.got = payload_class(), []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda _c, _u, m: self.got.append((m.topic.split("/")[2], self.P.FromString(m.payload)))
        self.c.connect(HOST, PORT)
        self.c.subscribe(f"spBv1.0/{group}/#", qos=1)
        self.c.loop_start()
        time.sleep(0.3)

    def wait(self, kind: str, n: int = 1, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while len(found := [p for k, p in self.got if k == kind]) < n:
            assert time.monotonic() < deadline, f"no {kind} within {timeout} s: got {[k for k, _ in self.got]}"
            time.sleep(0.02)
        return found

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def values(payload) -> dict:
    aliases = {m.alias: m.name for m in BY_NAME.values()}
    out = {}
    for m in payload.metrics:
        field = m.WhichOneof("value")
        out[m.name or aliases[m.alias]] = getattr(m, field) if field else None
    return out


def test_births_data_per_inspection_and_rebirth(service, service_settings):
    from inspector.service.adapters import Station
    from inspector.service.sparkplug import from_settings
    from inspector.settings import SparkplugSettings

    group = f"test-{uuid.uuid4().hex[:8]}"
    host = Host(group)
    service_settings.service.mqtt_host = HOST
    service_settings.service.sparkplug = SparkplugSettings(group=group, edge_node="station-1", device="cam0")
    node = from_settings(Station(service_settings, service.worker, service.handshake, service.db_engine))
    service.worker.start()
    node.start()
    try:
        nbirth, dbirth = host.wait("NBIRTH")[0], host.wait("DBIRTH")[0]
        assert values(nbirth)["bdSeq"] == 0 and values(nbirth)["Node Control/Rebirth"] is False
        assert nbirth.seq == 0 and dbirth.seq == 1
        births = {m.name: (m.alias, m.datatype) for m in dbirth.metrics}
        assert births["Inspection/Verdict"] == (BY_NAME["Inspection/Verdict"].alias, 12)  # String
        assert births["Inspection/ResultCode"][1] == 3  # Int32

        from tests.service.conftest import png_bytes

        service.handshake.windows_ms["washer"] = 60_000
        service.handshake.start()
        result = service.handshake.trigger(png_bytes("scratch"), part_serial="SP-1", product="washer", acknowledge=True)
        deadline = time.monotonic() + 30
        while not any("Inspection/Id" in values(p) for k, p in host.got if k == "DDATA"):
            assert time.monotonic() < deadline, "no DDATA for the inspection"
            time.sleep(0.02)
        data = [values(p) for k, p in host.got if k == "DDATA"]
        inspection = next(d for d in data if "Inspection/Id" in d)
        assert inspection["Inspection/Id"] == result.inspection_id
        assert inspection["Inspection/Verdict"] == result.verdict
        assert inspection["Inspection/ResultCode"] == result.result_code
        assert inspection["Inspection/PartSerial"] == "SP-1"
        assert any(d.get("Station/State") == "Busy" for d in data)

        cmd = host.P(timestamp=int(time.time() * 1000))
        m = cmd.metrics.add()
        m.name, m.datatype, m.boolean_value = "Node Control/Rebirth", 11, True
        host.c.publish(f"spBv1.0/{group}/NCMD/station-1", cmd.SerializeToString(), qos=1)
        rebirth = host.wait("NBIRTH", 2)[1]
        assert values(rebirth)["bdSeq"] == 0  # the same session: the same death certificate
    finally:
        node.stop()
        service.worker.stop(drain=True)
        service.handshake.close()
    assert values(host.wait("NDEATH")[0])["bdSeq"] == 0  # a clean stop sends it itself
    host.close()


def test_the_broker_declares_a_killed_station_dead(tmp_path, trained_model):
    """The real station (``inspector serve --sparkplug-group``), killed with SIGKILL: no clean
    disconnect, so only the MQTT will can say it died."""
    group = f"test-{uuid.uuid4().hex[:8]}"
    host = Host(group)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "inspector", "serve", "--home", str(tmp_path), "--model", str(trained_model),
           "--port", str(port), "--station", "station-9", "--mqtt-host", HOST, "--sparkplug-group", group]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        birth = host.wait("NBIRTH", timeout=180)[0]
        host.wait("DBIRTH")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        death = host.wait("NDEATH", timeout=30)[0]
        assert values(death)["bdSeq"] == values(birth)["bdSeq"]
    finally:
        if proc.poll() is None:
            proc.kill()
        host.close()


def test_a_malformed_command_is_ignored():
    node = SparkplugNode(HOST, PORT, "g", "n", "d")
    msg = mqtt.MQTTMessage(topic=b"spBv1.0/g/NCMD/n")
    msg.payload = b"\xff\xff\xff not protobuf"
    node._on_message(None, None, msg)  # no exception, no rebirth
    assert node.published == 0
