"""Wiring of the service: model, store, spool, worker, HTTP. No logic of its own."""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from sqlalchemy import text

from inspector.engine import Engine
from inspector.errors import InspectorError
from inspector.recorder import Recorder
from inspector.runtime import freeze_heap
from inspector.service.adapters import LineAdapter, Station, build_adapters
from inspector.service.camera import NEEDS_BROKER
from inspector.service.handshake import Handshake
from inspector.service.http import create_app
from inspector.service.mqtt import MqttPublisher
from inspector.service.reload import ChampionWatcher
from inspector.service.spool import Spool
from inspector.service.worker import InspectionWorker
from inspector.settings import ServiceSettings, Settings
from inspector.store.files import ImageStore, reconcile
from inspector.store.keys import KeyChecker
from inspector.store.migrate import upgrade
from inspector.store.monitoring import champion
from inspector.store.repo import mark_late
from inspector.store.session import make_engine, session_factory
from models.inference import available_cores

log = logging.getLogger("inspector.service")
FAILURE_SHOWN_S = 60  # /v1/ready answers 503 this long after a batch failed


@dataclass
class Service:
    worker: InspectionWorker
    db_engine: object
    keys: KeyChecker
    watcher: ChampionWatcher
    handshake: Handshake  # the PLC cycle every trigger goes through (OPC UA, MQTT, HTTP)

    def ready(self) -> tuple[bool, str]:
        try:
            with self.db_engine.connect() as conn:
                conn.execute(text("select 1"))
        except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
            return False, f"database unreachable: {type(exc).__name__}"
        failure = self.worker.last_failure
        if failure is not None and time.time() - failure[0] < FAILURE_SHOWN_S:
            return False, f"a batch failed {time.time() - failure[0]:.0f} s ago: {failure[1]}"
        return True, f"model {self.worker.engine.version}"


def build_service(
    settings: Settings,
    model_dir: Path | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 10,
    queue_size: int = 256,
    decode_threads: int | None = None,
) -> Service:
    upgrade(settings.database_url)
    db = make_engine(settings.database_url)
    sessions = session_factory(db)
    images = ImageStore(settings.images_dir)
    with sessions() as s:
        removed = reconcile(s, images)
    if removed:
        log.info("removed %d image files left by an interrupted run", removed)

    def load(path: Path) -> Engine:
        engine = Engine(path, settings.model.device, settings.max_image_pixels, settings.cache_dir)
        log.info("model %s warmed up in %.1f s", engine.version, engine.warm_up())
        return engine

    # The station serves the champion. A model named here becomes the champion (audited);
    # without one, the champion in the database, else the default model (champion if none).
    promote, champ_id = model_dir is not None, None
    if model_dir is None:
        with sessions() as s:
            champ = champion(s)
        if champ and Path(champ.artifact_path).is_dir():
            model_dir, champ_id = Path(champ.artifact_path), champ.id
    engine = load(model_dir or settings.default_model)
    worker = InspectionWorker(
        engine,
        Recorder(
            sessions,
            images,
            engine,
            promote=promote,
            model_id=champ_id,
            spot_check_share=settings.verdict.spot_check_share,
        ),
        Spool(settings.home / "spool"),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_size=queue_size,
        decode_threads=decode_threads,
    )
    watcher = ChampionWatcher(worker, sessions, images, load)
    watcher.sync_manuals(engine)  # before the first batch: the recorder must not re-add an older text
    return Service(worker, db, KeyChecker(sessions), watcher, make_handshake(settings, worker, sessions))


def make_handshake(settings: Settings, worker: InspectionWorker, sessions) -> Handshake:
    cfg, svc = settings.service.handshake, settings.service

    def late(uuids: list[str]) -> None:
        with sessions() as s:
            mark_late(s, uuids)
            s.commit()

    return Handshake(worker, cfg.product, svc.line, svc.station, svc.camera.name if svc.camera else "plc",
                     cfg.window_ms, cfg.windows_ms, cfg.fault_after, mark_late=late)  # fmt: skip


def asgi_app(
    service: Service,
    max_body_bytes: int = 50 << 20,
    line: str = "",
    mqtt: MqttPublisher | None = None,
    station: str = "",
    open_paths: tuple[str, ...] = ("/v1/health", "/v1/ready", "/metrics"),
    adapters: list[LineAdapter] | tuple = (),
):
    """``mqtt``: the results bus, started before the worker and flushed after it drains;
    ``adapters``: the line's inputs and protocols (hot folder, camera, OPC UA, Sparkplug B),
    started after the worker and stopped before it."""
    handshake = service.handshake
    app = create_app(
        service.worker,
        service.ready,
        max_body_bytes,
        authorize=service.keys.check,
        line=line,
        station=station,
        open_paths=tuple(open_paths),
        handshake=handshake,
    )
    if mqtt:
        service.worker.listeners.append(mqtt)

    @asynccontextmanager
    async def lifespan(_app):
        if mqtt:
            mqtt.start()
        service.worker.start()
        service.watcher.start()
        handshake.start()
        started = []
        for adapter in adapters:
            adapter.start()
            started.append(adapter)
            log.info("line adapter %s started", adapter.name)
        yield
        for adapter in reversed(started):
            adapter.stop()
        handshake.stop()
        service.watcher.stop()
        service.worker.stop(drain=True)  # graceful shutdown: finish what was accepted
        handshake.close()
        if mqtt:
            mqtt.stop()

    app.router.lifespan_context = lifespan
    return app


def model_threads(cfg: ServiceSettings, cores: int | None = None) -> int:
    """The model's intra-op threads: ``cfg.model_threads``, else every core but one where a PLC drives
    the station over OPC UA, else every core.

    A PLC's handshake holds one part in flight, so each inspection is a batch of one whose every
    layer is a parallel region that waits for its slowest thread; when the OPC UA server, decoding
    or storing takes one of those cores, the whole layer waits. On the 2-core station (bench/line.py,
    the demo model) one thread inspects a part in 56-58 ms on the line against 71-78 ms for two, and
    no part of 177 came late at 20 parts/s against 9 of 154 (docs/service.md). Batched load keeps
    every core: through HTTP two threads move 19.4 images/s against 14.1 (bench/serve.py)."""
    if cfg.model_threads is not None:
        return cfg.model_threads
    cores = cores or available_cores()
    return max(1, cores - 1) if cfg.opcua is not None else cores


def serve(settings: Settings, model_dir: Path | None = None) -> None:
    """Run the station as ``settings.service`` describes it, until SIGTERM / Ctrl-C."""
    import uvicorn

    cfg = settings.service
    if cfg.camera and cfg.camera.mode == "trigger" and not cfg.mqtt_host:  # before the model loads
        raise InspectorError(NEEDS_BROKER)
    torch.set_num_threads(model_threads(cfg))
    log.info("the model runs on %d threads", torch.get_num_threads())
    service = build_service(settings, model_dir, cfg.max_batch, cfg.max_wait_ms, cfg.queue_size, cfg.decode_threads)
    mqtt = MqttPublisher(cfg.mqtt_host, cfg.mqtt_port, settings.home / "mqtt-buffer") if cfg.mqtt_host else None
    adapters = build_adapters(Station(settings, service.worker, service.handshake, service.db_engine, mqtt))
    app = asgi_app(service, int(cfg.max_body_mb * 2**20), cfg.line, mqtt, cfg.station, tuple(cfg.open_paths), adapters)
    log.info("%d long-lived objects kept out of the garbage collector's full passes", freeze_heap())
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
