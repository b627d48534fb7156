"""MQTT output: every stored verdict is published as JSON on ``<prefix>/<line>/<station>/result``
(QoS 1), in order. Messages go to a bounded on-disk buffer first, so a broker that is down
loses nothing: they are delivered, oldest first, once it is back."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

import paho.mqtt.client as mqtt

from inspector.service.spool import Job
from inspector.service.worker import Outcome

log = logging.getLogger(__name__)


class MqttPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        buffer_dir: Path,
        prefix: str = "inspector",
        max_buffered: int = 100_000,
        client_id: str = "",
    ) -> None:
        self.prefix, self.max_buffered = prefix, max_buffered
        self.buffer = Path(buffer_dir)
        self.buffer.mkdir(parents=True, exist_ok=True)
        self._seq = max((int(p.stem) for p in self.buffer.glob("*.json")), default=0)
        self._lock, self._wake, self._stop = threading.Lock(), threading.Event(), threading.Event()
        self.dropped = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.host, self.port = host, port
        self._triggers: dict[str, object] = {}  # topic -> callback(part_serial | None)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    def topic(self, line: str, station: str) -> str:
        return f"{self.prefix}/{line or 'default'}/{station or 'default'}/result"

    def __call__(self, job: Job, outcome: Outcome) -> None:
        """Worker listener: buffer one result for delivery."""
        self.publish(
            self.topic(job.line, job.station),
            {
                **asdict(outcome),
                "line": job.line,
                "station": job.station,
                "camera": job.camera,
                "part_serial": job.part_serial,
            },
        )

    def publish(self, topic: str, payload: dict) -> None:
        with self._lock:
            self._seq += 1
            path = self.buffer / f"{self._seq:012d}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"topic": topic, "payload": payload}))
            os.replace(tmp, path)
            pending = sorted(self.buffer.glob("*.json"))
            if len(pending) > self.max_buffered:  # bounded: the oldest go (they are in the database)
                for old in pending[: len(pending) - self.max_buffered]:
                    old.unlink(missing_ok=True)
                    self.dropped += 1
                log.warning("MQTT buffer full: dropped %d oldest results (all are in the database)", self.dropped)
        self._wake.set()

    def on_trigger(self, line: str, station: str, callback) -> str:
        """Call ``callback(part_serial)`` for each message on ``<prefix>/<line>/<station>/trigger``
        (payload: empty, a serial, or JSON with ``part_serial``). -> the topic."""
        topic = f"{self.prefix}/{line or 'default'}/{station or 'default'}/trigger"
        self._triggers[topic] = callback
        if self.client.is_connected():
            self.client.subscribe(topic, qos=1)
        return topic

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        for topic in self._triggers:  # (re)subscribe on every connection
            client.subscribe(topic, qos=1)
        self._wake.set()

    def _on_message(self, _client, _userdata, msg) -> None:
        callback = self._triggers.get(msg.topic)
        if callback is None:
            return
        text = msg.payload.decode("utf-8", "replace").strip()
        serial = None
        if text.startswith("{"):
            try:
                serial = json.loads(text).get("part_serial")
            except ValueError:
                log.warning("trigger on %s: payload is not JSON: %r", msg.topic, text[:100])
        elif text:
            serial = text[:128]
        callback(serial)

    def pending(self) -> int:
        return sum(1 for _ in self.buffer.glob("*.json"))

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        self._thread.start()

    def stop(self, flush_timeout: float = 5.0) -> None:
        deadline = time.monotonic() + flush_timeout
        while self.pending() and self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._thread.join(10)
        self.client.loop_stop()
        self.client.disconnect()

    def _run(self) -> None:
        while not self._stop.is_set():
            sent_any = False
            if self.client.is_connected():
                for path in sorted(self.buffer.glob("*.json")):
                    if self._stop.is_set() or not self._send(path):
                        break
                    sent_any = True
            if not sent_any:
                self._wake.wait(0.5)
                self._wake.clear()

    def _send(self, path: Path) -> bool:
        try:
            msg = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # unreadable buffer entry: nothing to deliver
            return True
        info = self.client.publish(msg["topic"], json.dumps(msg["payload"]), qos=1)
        try:
            info.wait_for_publish(timeout=5)
        except (RuntimeError, ValueError):
            return False
        if not info.is_published():
            return False  # broker gone mid-way: keep it, in order, for the next connection
        path.unlink(missing_ok=True)
        return True
