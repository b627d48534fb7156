"""Sparkplug B 3.0 edge node: the station as ``spBv1.0/<group>/…/<edge node>/<device>`` on the MQTT broker.

- On connect: NBIRTH (bdSeq, ``Node Control/Rebirth``, the station's state) then DBIRTH with
  every device metric's name, alias and data type; the MQTT will is the NDEATH with the same
  bdSeq, so a killed station is declared dead by the broker.
- Every stored inspection is one DDATA (metrics by alias); handshake state changes are DDATA too.
- NCMD ``Node Control/Rebirth`` = true republishes the births.
- Payloads are protobuf: ``proto/sparkplug_b.proto`` (the specification's Payload and Metric
  fields) compiled with protoc from grpcio-tools when first needed, never hand-encoded.

Sparkplug data are live values: while the broker is away they are not queued (the store has
every inspection, and the plain JSON topic buffers on disk); the births on reconnect give hosts
the current state.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

from inspector.service.handshake import result_code
from inspector.service.line_state import HandshakeState
from inspector.service.spool import Job
from inspector.service.worker import Outcome

if TYPE_CHECKING:
    from inspector.service.adapters import Station

log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"
INT32, UINT64, DOUBLE, BOOLEAN, STRING = 3, 8, 10, 11, 12  # Sparkplug B data types
VALUE_FIELD = {INT32: "int_value", UINT64: "long_value", DOUBLE: "double_value", BOOLEAN: "boolean_value",
               STRING: "string_value"}  # fmt: skip


@functools.cache
def payload_class() -> type:
    """The Payload message class, compiled from proto/sparkplug_b.proto with protoc."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    proto = Path(__file__).with_name("proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sparkplug_b.desc"
        if protoc.main(["protoc", f"-I{proto}", f"--descriptor_set_out={out}", "sparkplug_b.proto"]) != 0:
            raise RuntimeError(f"protoc could not compile {proto / 'sparkplug_b.proto'}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inspector.sparkplug_b.Payload"))


@dataclass(frozen=True)
class MetricDef:
    name: str
    alias: int
    datatype: int


DEVICE_METRICS = [
    MetricDef(name, i + 1, dt)
    for i, (name, dt) in enumerate([
        ("Inspection/Id", STRING), ("Inspection/Product", STRING), ("Inspection/Verdict", STRING),
        ("Inspection/ResultCode", INT32), ("Inspection/DefectType", STRING), ("Inspection/Confidence", DOUBLE),
        ("Inspection/DefectScore", DOUBLE), ("Inspection/LatencyMs", DOUBLE), ("Inspection/PartSerial", STRING),
        ("Inspection/ModelVersion", STRING), ("Station/State", STRING), ("Station/Triggers", UINT64),
        ("Station/Timeouts", UINT64), ("Station/Refused", UINT64),
    ])
]  # fmt: skip
BY_NAME = {m.name: m for m in DEVICE_METRICS}


def _metric(payload, name: str, value, datatype: int, alias: int | None = None, now: int = 0, birth: bool = False):
    m = payload.metrics.add()
    if birth or alias is None:
        m.name = name
    if alias is not None:
        m.alias = alias
    m.timestamp, m.datatype = now, datatype
    if value is None:
        m.is_null = True
    else:
        setattr(m, VALUE_FIELD[datatype], value)


class SparkplugNode:
    """The line adapter: one edge node (the station) with one device (its camera)."""

    name = "sparkplug"

    def __init__(
        self, host: str, port: int, group: str, edge_node: str, device: str,
        defect_types=lambda _p: [],
        client_id: str = "",
    ) -> None:  # fmt: skip
        self.host, self.port, self.group, self.node, self.device = host, port, group, edge_node, device
        self.defect_types = defect_types
        self.Payload = payload_class()
        self._seq, self._lock = 0, threading.Lock()
        self._bd_seq, self._bd_next = 0, 0  # bdSeq of this connection's will, and of the next one's
        self._state: dict[str, object] = {"Station/State": "Ready"}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"inspector-{edge_node}")
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self.client.on_connect, self.client.on_message = self._on_connect, self._on_message
        self.published = 0

    def topic(self, kind: str, device: bool = False) -> str:
        return f"{NAMESPACE}/{self.group}/{kind}/{self.node}" + (f"/{self.device}" if device else "")

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._set_will(self._bd_next)
        self.client.connect_async(self.host, self.port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        """A clean shutdown sends the NDEATH itself (the broker drops the will on a clean disconnect)."""
        try:
            if self.client.is_connected():
                self.client.publish(self.topic("NDEATH"), self._death(self._bd_seq), qos=1).wait_for_publish(5)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()

    def _death(self, bd_seq: int) -> bytes:
        p = self.Payload(timestamp=_now())
        _metric(p, "bdSeq", bd_seq, UINT64, now=p.timestamp, birth=True)
        return p.SerializeToString()

    def _set_will(self, bd_seq: int) -> None:
        """The NDEATH the broker sends if the connection made next dies (paho sends it on CONNECT)."""
        self.client.will_set(self.topic("NDEATH"), self._death(bd_seq), qos=1, retain=False)

    def _on_connect(self, client, _userdata, _flags, reason_code, _props=None) -> None:
        if reason_code.is_failure:
            log.warning("Sparkplug B: broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.topic("NCMD"), qos=1)
        with self._lock:
            self._bd_seq, self._bd_next = self._bd_next, (self._bd_next + 1) % 256
            self._set_will(self._bd_next)
        self._births()

    def _on_message(self, _client, _userdata, msg) -> None:
        from google.protobuf.message import DecodeError

        try:
            cmd = self.Payload.FromString(msg.payload)
        except DecodeError:  # a malformed command is ignored, never fatal
            log.warning("Sparkplug B: undecodable NCMD on %s", msg.topic)
            return
        if any(m.name == "Node Control/Rebirth" and m.boolean_value for m in cmd.metrics):
            log.info("Sparkplug B: rebirth requested")
            self._births()

    # -- messages ----------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _births(self) -> None:
        with self._lock:
            now = _now()
            self._seq = 0
            node = self.Payload(timestamp=now, seq=self._next_seq())
            _metric(node, "bdSeq", self._bd_seq, UINT64, now=now, birth=True)
            _metric(node, "Node Control/Rebirth", False, BOOLEAN, now=now, birth=True)
            self.client.publish(self.topic("NBIRTH"), node.SerializeToString(), qos=0)
            dev = self.Payload(timestamp=now, seq=self._next_seq())
            for m in DEVICE_METRICS:
                _metric(dev, m.name, self._state.get(m.name), m.datatype, m.alias, now, birth=True)
            self.client.publish(self.topic("DBIRTH", device=True), dev.SerializeToString(), qos=0)
            self.published += 2

    def _data(self, values: dict[str, object]) -> None:
        with self._lock:
            self._state.update(values)
            if not self.client.is_connected():
                return  # live data only: the births on reconnect carry the current state
            now = _now()
            p = self.Payload(timestamp=now, seq=self._next_seq())
            for name, value in values.items():
                m = BY_NAME[name]
                _metric(p, name, value, m.datatype, m.alias, now)
            self.client.publish(self.topic("DDATA", device=True), p.SerializeToString(), qos=0)
            self.published += 1

    def __call__(self, job: Job, outcome: Outcome) -> None:
        """Worker listener: one DDATA per stored inspection."""
        code = result_code(outcome, list(self.defect_types(outcome.product)))
        self._data({
            "Inspection/Id": outcome.inspection_id, "Inspection/Product": outcome.product,
            "Inspection/Verdict": outcome.verdict, "Inspection/ResultCode": code,
            "Inspection/DefectType": outcome.defect_type, "Inspection/Confidence": outcome.confidence,
            "Inspection/DefectScore": outcome.defect_score, "Inspection/LatencyMs": float(outcome.latency_ms),
            "Inspection/PartSerial": job.part_serial, "Inspection/ModelVersion": outcome.model_version,
        })  # fmt: skip

    def on_handshake(self, s: HandshakeState) -> None:
        c = s.counters
        self._data({"Station/State": s.system_state, "Station/Triggers": c.triggers,
                    "Station/Timeouts": c.timeouts, "Station/Refused": c.refused})  # fmt: skip


def _now() -> int:
    return int(time.time() * 1000)


def from_settings(station: Station) -> SparkplugNode | None:
    svc = station.settings.service
    if svc.sparkplug is None:
        return None
    if not svc.mqtt_host:
        from inspector.errors import InspectorError

        raise InspectorError("Sparkplug B needs an MQTT broker: set service.mqtt_host")
    cfg = svc.sparkplug
    device = cfg.device or (svc.camera.name if svc.camera else "cam0")
    node = SparkplugNode(svc.mqtt_host, svc.mqtt_port, cfg.group, cfg.edge_node or svc.station or "station", device,
                         lambda product: station.worker.engine.defect_types(product))  # fmt: skip
    station.worker.listeners.append(node)
    station.handshake.listeners.append(node.on_handshake)
    return node
