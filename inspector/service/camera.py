"""Camera input (OpenCV ``VideoCapture``): a device index, an RTSP/HTTP URL or a video file.

Modes: ``interval`` inspects every Nth frame, at most ``rate`` frames per second; ``trigger``
keeps reading (so the latest frame is fresh) and hands the PLC handshake a new frame per
``grab()`` (the handshake's triggers come over OPC UA, MQTT or HTTP).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import cv2

from inspector.errors import InspectorError
from inspector.service.handshake import Handshake
from inspector.service.line_state import TriggerRefused
from inspector.service.spool import Job
from inspector.service.worker import InspectionWorker, QueueFullError

if TYPE_CHECKING:
    from inspector.service.adapters import Station
    from inspector.service.mqtt import MqttPublisher

log = logging.getLogger(__name__)
NEEDS_BROKER = "a camera in trigger mode needs an MQTT broker (mqtt_host) for its trigger topic"


class CameraInput:
    def __init__(
        self,
        source: str | int,
        worker: InspectionWorker,
        product: str,
        line: str = "",
        station: str = "",
        name: str = "cam0",
        mode: str = "interval",
        every_n: int = 1,
        rate: float | None = None,
    ) -> None:
        if mode not in ("interval", "trigger"):
            raise ValueError(f"camera mode '{mode}' must be 'interval' or 'trigger'")
        self.source = int(source) if isinstance(source, str) and source.isdigit() else source
        self.worker, self.product, self.line, self.station, self.name = worker, product, line, station, name
        self.mode, self.every_n, self.rate = mode, max(1, every_n), rate
        self.submitted = 0
        self.finished = threading.Event()  # set when the source ends (a video file) or stop() is called
        self._triggers: list[str | None] = []
        self._latest, self._fresh = None, threading.Event()  # trigger mode: the newest frame, for grab()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def trigger(self, part_serial: str | None = None) -> None:
        with self._lock:
            self._triggers.append(part_serial)

    def grab(self, timeout: float = 1.0) -> bytes:
        """The next frame as PNG (trigger mode): what the PLC handshake inspects. b"" if none came."""
        self._fresh.clear()
        if not self._fresh.wait(timeout):
            return b""
        with self._lock:
            frame = self._latest
        ok, png = cv2.imencode(".png", frame)
        return png.tobytes() if ok else b""

    def _submit(self, frame, part_serial: str | None) -> None:
        ok, png = cv2.imencode(".png", frame)
        if not ok:
            log.warning("camera %s: could not encode a frame", self.name)
            return
        job = Job(
            id=str(uuid.uuid4()),
            product=self.product,
            source=f"camera:{self.name}",
            line=self.line,
            station=self.station,
            camera=self.name,
            part_serial=part_serial,
        )
        while not self._stop.is_set():
            try:
                self.worker.submit(job, png.tobytes())
                self.submitted += 1
                return
            except QueueFullError:
                time.sleep(0.01)  # backpressure: the camera waits, nothing accepted is dropped

    def _run(self) -> None:
        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            log.error("camera %s: cannot open %r", self.name, self.source)
            self.finished.set()
            return
        index, last = 0, 0.0
        try:
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    if isinstance(self.source, str) and "://" not in self.source:
                        break  # end of a video file
                    time.sleep(0.1)  # a live stream hiccup: keep trying
                    continue
                index += 1
                if self.mode == "trigger":
                    with self._lock:
                        pending, self._triggers = self._triggers, []
                        self._latest = frame
                    self._fresh.set()
                    for serial in pending:
                        self._submit(frame, serial)
                    continue
                now = time.monotonic()
                if (index - 1) % self.every_n == 0 and (not self.rate or now - last >= 1 / self.rate):
                    last = now
                    self._submit(frame, None)
        finally:
            cap.release()
            self.finished.set()


class FrameSource(Protocol):
    name: str
    line: str
    station: str

    def grab(self, timeout: float = 1.0) -> bytes: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class TriggeredCamera:
    """A camera in trigger mode: each message on its MQTT trigger topic runs the PLC handshake
    on a fresh frame, exactly as an OPC UA or HTTP trigger would."""

    def __init__(self, camera: FrameSource, mqtt: MqttPublisher, handshake: Handshake) -> None:
        self.camera, self.name = camera, camera.name
        handshake.grab, handshake.camera = camera.grab, camera.name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mqtt-trigger")  # the MQTT thread must not wait
        self.topic = mqtt.on_trigger(
            camera.line, camera.station, lambda serial: self._pool.submit(_trigger, handshake, serial)
        )

    def start(self) -> None:
        self.camera.start()
        log.info("camera %s waits for triggers on %s", self.name, self.topic)

    def stop(self) -> None:
        self._pool.shutdown(wait=True)  # a trigger already taken ends as a stored inspection
        self.camera.stop()


def _trigger(handshake: Handshake, serial: str | None) -> None:
    try:
        handshake.trigger(part_serial=serial or "", acknowledge=True)
    except TriggerRefused as exc:
        log.warning("MQTT trigger refused (code %d): %s", exc.code, exc)


def from_settings(station: Station) -> CameraInput | TriggeredCamera | None:
    cfg = station.settings.service
    if cfg.camera is None:
        return None
    camera = CameraInput(worker=station.worker, line=cfg.line, station=cfg.station, **cfg.camera.model_dump())
    if camera.mode != "trigger":
        return camera
    if station.mqtt is None:
        raise InspectorError(NEEDS_BROKER)
    return TriggeredCamera(camera, station.mqtt, station.handshake)
