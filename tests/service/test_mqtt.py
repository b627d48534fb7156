"""Results over MQTT on a real Mosquitto broker, including one that is down and comes back."""

import json
import shutil
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from inspector.service.mqtt import MqttPublisher
from inspector.service.spool import Job
from inspector.service.worker import Outcome
from tests.helpers.waiting import wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscriber(port: int, topic: str):
    got, ready = [], threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.on_connect = lambda cl, *a: (cl.subscribe(topic, qos=1), ready.set())
    c.on_message = lambda cl, ud, msg: got.append((msg.topic, json.loads(msg.payload)))
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    time.sleep(0.2)
    return c, got


def outcome(i):
    return Outcome(inspection_id=f"id{i}", product="washer", verdict="accept")


def broker_up(port: int = 1883) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not broker_up(), reason="Mosquitto not running on 127.0.0.1:1883")
def test_results_published_in_order_with_qos1(tmp_path):
    sub, got = subscriber(1883, "inspector/L9/#")
    pub = MqttPublisher("127.0.0.1", 1883, tmp_path / "buf")
    pub.start()
    for i in range(20):
        pub(Job(id=f"id{i}", product="washer", line="L9", station="S1"), outcome(i))
    assert wait_for(lambda: len(got) == 20)
    pub.stop()
    sub.loop_stop()
    assert {t for t, _ in got} == {"inspector/L9/S1/result"}
    assert [p["inspection_id"] for _, p in got] == [f"id{i}" for i in range(20)]
    assert pub.pending() == 0


def test_broker_down_buffers_on_disk_and_delivers_in_order_when_back(tmp_path):
    port = free_port()
    pub = MqttPublisher("127.0.0.1", port, tmp_path / "buf", max_buffered=1000)
    pub.start()
    for i in range(10):
        pub(Job(id=f"id{i}", product="washer", line="L1", station="S1"), outcome(i))
    time.sleep(1)
    assert pub.pending() == 10  # nothing lost while the broker is down
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: broker_up(port), 10)
        sub, got = subscriber(port, "inspector/#")
        assert wait_for(lambda: len(got) == 10, 30), got
        assert [p["inspection_id"] for _, p in got] == [f"id{i}" for i in range(10)]
        assert pub.pending() == 0
        sub.loop_stop()
    finally:
        pub.stop()
        broker.kill()
        broker.wait()


def test_buffer_is_bounded(tmp_path):
    pub = MqttPublisher("127.0.0.1", free_port(), tmp_path / "buf", max_buffered=5)
    for i in range(8):
        pub.publish("t", {"i": i})
    assert pub.pending() == 5 and pub.dropped == 3
    kept = sorted(json.loads(p.read_text())["payload"]["i"] for p in (tmp_path / "buf").glob("*.json"))
    assert kept == [3, 4, 5, 6, 7]


@pytest.mark.skipif(not broker_up(), reason="Mosquitto not running on 127.0.0.1:1883")
def test_trigger_messages_reach_the_callback(tmp_path):
    seen = []
    pub = MqttPublisher("127.0.0.1", 1883, tmp_path / "buf")
    topic = pub.on_trigger("L5", "S2", seen.append)
    pub.start()
    assert wait_for(pub.client.is_connected, 10)
    time.sleep(0.3)
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sender.connect("127.0.0.1", 1883)
    sender.loop_start()
    for payload in ("", "SN-9", json.dumps({"part_serial": "SN-10"})):
        sender.publish(topic, payload, qos=1).wait_for_publish(5)
    assert wait_for(lambda: len(seen) == 3)
    sender.loop_stop()
    pub.stop()
    assert topic == "inspector/L5/S2/trigger" and seen == [None, "SN-9", "SN-10"]
