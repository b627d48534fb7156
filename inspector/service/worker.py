"""One worker turns queued jobs into stored verdicts in micro-batches.

submit() spools the image (durable), then queues it; a full queue is refused at once
(backpressure: HTTP answers 503, the folder input waits). The worker gathers up to
``max_batch`` jobs or waits ``max_wait_ms``, decodes them in threads, runs the model once per
product, stores every verdict (retrying while the database is down), and only then answers
the callers and drops the jobs from the spool.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from inspector.engine import Engine, Verdict
from inspector.errors import InspectorError, UnknownProductError
from inspector.images import load_image
from inspector.recorder import STORE_VERDICT, Capture, Recorder
from inspector.service.metrics import ServiceMetrics
from inspector.service.spool import Job, Spool

log = logging.getLogger(__name__)


class QueueFullError(InspectorError):
    """The station is at capacity; try again shortly (nothing was accepted)."""


@dataclass
class Outcome:
    """What a caller gets back: the stored inspection and its verdict."""

    inspection_id: str
    product: str
    verdict: str  # ok | uncertain | defect | error (as stored)
    defect_type: str | None = None
    confidence: float | None = None
    anomaly_score: float | None = None
    reason: str | None = None
    image_only: bool = False
    flags: list[str] = field(default_factory=list)
    model_version: str = ""
    latency_ms: float = 0.0
    error: str | None = None


class InspectionWorker:
    def __init__(
        self,
        engine: Engine,
        recorder: Recorder,
        spool: Spool,
        max_batch: int = 32,
        max_wait_ms: float = 10.0,
        queue_size: int = 256,
        decode_threads: int = 2,
        metrics: ServiceMetrics | None = None,
        db_retry_s: float = 1.0,
    ) -> None:
        self.engine, self.recorder, self.spool = engine, recorder, spool
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: queue.Queue[tuple[Job, Future, float]] = queue.Queue(queue_size)
        self.decoder = ThreadPoolExecutor(decode_threads, thread_name_prefix="decode")
        self.metrics = metrics or ServiceMetrics()
        self.db_retry_s = db_retry_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inspection-worker", daemon=True)
        self._admit = threading.Lock()
        self.listeners: list = []  # called with (job, outcome) once the outcome is stored (MQTT output)
        self._next_model: tuple[Engine, Recorder] | None = None

    # -- callers -------------------------------------------------------------------------------
    def known_product(self, product: str) -> bool:
        return product in self.engine.manuals or product in self.engine.card["products"]

    def submit(self, job: Job, data: bytes) -> Future:
        """Accept one image. Raises QueueFullError (nothing accepted) or UnknownProductError."""
        if not self.known_product(job.product):
            raise UnknownProductError(f"unknown product '{job.product}'")
        with self._admit:  # check-then-put must be atomic across input threads
            if self.queue.full() or self._stop.is_set():
                self.metrics.rejected_full.inc()
                raise QueueFullError("inspection queue is full")
            self.spool.put(job, data)
            fut: Future = Future()
            self.queue.put_nowait((job, fut, time.perf_counter()))
        self.metrics.queue_depth.set(self.queue.qsize())
        return fut

    def replace_model(self, engine: Engine, recorder: Recorder) -> None:
        """Serve from the next batch on with another model; the batch in flight finishes on this one."""
        self._next_model = (engine, recorder)

    def pending_model_dir(self):
        pending = self._next_model
        return pending[0].model_dir.resolve() if pending else None

    def start(self) -> None:
        """Start the worker, first re-queueing what an earlier run accepted but never finished."""
        for job in self.spool.pending():
            self.queue.put((job, Future(), time.perf_counter()))  # blocks if more than fit: nothing dropped
            log.info("re-queued spooled job %s from an earlier run", job.id)
        self._thread.start()

    def stop(self, drain: bool = True, timeout: float = 60.0) -> None:
        """Stop accepting; with ``drain`` finish everything queued first."""
        if drain:
            deadline = time.monotonic() + timeout
            while not self.queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._stop.set()
        self._thread.join(timeout)
        self.decoder.shutdown(wait=True)

    # -- the worker ----------------------------------------------------------------------------
    def _gather(self) -> list[tuple[Job, Future, float]]:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch, deadline = [first], time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                batch.append(self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            batch = self._gather()
            if self._next_model is not None:  # between batches: each verdict names the model that made it
                (self.engine, self.recorder), self._next_model = self._next_model, None
            if batch:
                self.metrics.queue_depth.set(self.queue.qsize())
                self.metrics.batch_size.observe(len(batch))
                try:
                    self._process(batch)
                except Exception as exc:
                    log.exception("batch failed; its jobs stay spooled and are retried at the next start")
                    for _, fut, _ in batch:
                        if not fut.done():
                            fut.set_exception(exc)

    def _decode(self, job: Job):
        try:
            data = self.spool.data(job)
            return data, load_image(
                data,
                name=job.source or job.id,
                max_pixels=self.engine.max_pixels,
                draft_size=2 * self.engine.encoder.input_size,
            )
        except Exception as exc:  # noqa: BLE001 - becomes this job's error verdict
            return None, exc

    def _process(self, batch: list[tuple[Job, Future, float]]) -> None:
        decoded = list(self.decoder.map(lambda item: self._decode(item[0]), batch))
        by_product: dict[str, list[int]] = {}
        for i, (job, _, _) in enumerate(batch):
            by_product.setdefault(job.product, []).append(i)
        for product, idx in by_product.items():
            results: list[Verdict | Exception] = [None] * len(idx)  # type: ignore[list-item]
            images = [(k, decoded[i][1]) for k, i in enumerate(idx) if not isinstance(decoded[i][1], Exception)]
            for k, i in enumerate(idx):
                if isinstance(decoded[i][1], Exception):
                    results[k] = decoded[i][1]
            if images:
                try:
                    verdicts = self.engine.inspect_arrays(product, [im for _, im in images])
                except InspectorError as exc:
                    verdicts = [exc] * len(images)
                for (k, _), v in zip(images, verdicts, strict=True):
                    results[k] = v
            captures = [self._capture(batch[i][0], decoded[i][0]) for i in idx]
            self._store(product, captures, results, [batch[i][0].id for i in idx])
            for k, i in enumerate(idx):
                job, fut, t0 = batch[i]
                outcome = self._outcome(job, results[k], (time.perf_counter() - t0) * 1000)
                self.spool.done(job)
                self.metrics.observe(outcome)
                if not fut.done():
                    fut.set_result(outcome)
                for listener in self.listeners:
                    try:
                        listener(job, outcome)
                    except Exception:
                        log.exception("result listener failed for %s", job.id)

    @staticmethod
    def _capture(job: Job, data: bytes | None) -> Capture:
        return Capture(job.source or job.id, data, job.captured_at, job.line, job.station, job.camera, job.part_serial)

    def _store(self, product: str, captures: list[Capture], results: list, ids: list[str]) -> None:
        """Store the batch; while the database is down keep retrying (the jobs stay spooled)."""
        delay = self.db_retry_s
        while True:
            try:
                self.recorder.record(product, captures, results, ids)
                return
            except SQLAlchemyError as exc:
                self.metrics.db_errors.inc()
                log.warning("database write failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                if self._stop.is_set() and self.queue.empty():
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _outcome(self, job: Job, res: Verdict | Exception, latency_ms: float) -> Outcome:
        base = {
            "inspection_id": job.id,
            "product": job.product,
            "model_version": self.recorder.model_name,
            "latency_ms": round(latency_ms, 2),
        }
        if isinstance(res, Verdict):
            return Outcome(
                verdict=STORE_VERDICT[res.verdict],
                defect_type=res.defect_type,
                confidence=res.confidence,
                anomaly_score=res.defect_score,
                reason=res.reason,
                image_only=res.image_only,
                flags=res.flags,
                **base,
            )
        return Outcome(verdict="error", error=str(res), **base)
