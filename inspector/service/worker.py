"""The worker turns queued jobs into stored verdicts in micro-batches, in three stages.

submit() spools the image (durable), then queues it; a full queue is refused at once
(backpressure: HTTP answers 503, the folder input waits). Then, each stage in its own thread
so that a GPU is not left waiting on the CPU work around it:

1. gather: up to ``max_batch`` jobs, or what came within ``max_wait_ms``; each job's decode
   and resize starts in the decode threads as soon as it is taken;
2. infer: the model once per product in the batch;
3. store: every verdict stored (retrying while the database is down), and only then the
   callers answered and the jobs dropped from the spool.

Stages hand batches on through queues of two, so a slow stage (a database outage) backs up
into the bounded input queue, and batches are stored and answered in the order they came.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from inspector.engine import Engine, Verdict
from inspector.errors import InspectorError, UnknownProductError
from inspector.images import DRAFT_SIZE, load_image
from inspector.recorder import Capture, Recorder, spot_checked, stored_outcome
from inspector.service.metrics import ServiceMetrics
from inspector.service.spool import Job, Spool
from inspector.store.files import ImageStore, StoredImage

log = logging.getLogger(__name__)


class QueueFullError(InspectorError):
    """The station is at capacity; try again shortly (nothing was accepted)."""


@dataclass
class Outcome:
    """What a caller gets back: the stored inspection and its verdict."""

    inspection_id: str
    product: str
    verdict: str  # accept | review | reject | error (as stored)
    defect_type: str | None = None
    confidence: float | None = None
    defect_score: float | None = None  # the decision score the thresholds cut
    reject_threshold: float | None = None
    classifier_score: float | None = None  # the classifier's P(defect)
    anomaly_score: float | None = None  # distance to the nearest good patch (the anomaly part)
    reason: str | None = None
    image_only: bool = False
    flags: list[str] = field(default_factory=list)
    model_version: str = ""
    latency_ms: float = 0.0
    error: str | None = None
    spot_check: bool = False  # an accepted part picked at random for review: the line may pull it for the audit


class _Queued(NamedTuple):
    job: Job
    future: Future  # the caller's
    accepted: float  # time.perf_counter() when it was accepted
    answer_by: float | None = None  # time.perf_counter() by which the caller needs it (a PLC's window)


@dataclass
class _Batch:
    jobs: list[_Queued]
    engine: Engine  # the model that answers the whole batch, and the recorder that names it
    recorder: Recorder
    decoded: list[Future]  # per job: ((bytes, its file being written) | None, the parts' views | Exception, (w, h))
    results: list[Verdict | Exception] = field(default_factory=list)


_END = None  # passed down the stages when the worker stops


class InspectionWorker:
    def __init__(
        self,
        engine: Engine,
        recorder: Recorder,
        spool: Spool,
        max_batch: int = 32,
        max_wait_ms: float = 10.0,
        queue_size: int = 256,
        decode_threads: int | None = None,
        metrics: ServiceMetrics | None = None,
        db_retry_s: float = 1.0,
    ) -> None:
        self.engine, self.recorder, self.spool = engine, recorder, spool
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue: queue.Queue[tuple[Job, Future, float]] = queue.Queue()
        self._slots = threading.Semaphore(queue_size)  # the bound: taken by submit, given back by gather
        threads = decode_threads or min(8, os.cpu_count() or 1)  # decoding and resizing release the GIL
        self.decoder = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self.metrics = metrics or ServiceMetrics()
        self.db_retry_s = db_retry_s
        self._stop = threading.Event()
        self._to_infer: queue.Queue[_Batch | None] = queue.Queue(2)
        self._to_store: queue.Queue[_Batch | None] = queue.Queue(2)
        self._threads = [
            threading.Thread(target=loop, name=f"inspection-{name}", daemon=True)
            for name, loop in (("gather", self._gather_loop), ("infer", self._infer_loop), ("store", self._store_loop))
        ]
        self.listeners: list = []  # called with (job, outcome) once the outcome is stored (MQTT output)
        self._next_model: tuple[Engine, Recorder] | None = None
        self.max_attempts = 3
        self._inflight: dict[str, Future] = {}  # job id -> its answer, while it is queued or running
        self._inflight_lock = threading.Lock()
        self.last_failure: tuple[float, str] | None = None  # (unix time, error) of the latest failed batch
        self.store_seconds = 0.0  # what storing a batch has lately taken: the model's answer comes before it

    # -- callers -------------------------------------------------------------------------------
    def known_product(self, product: str) -> bool:
        return self.engine.knows(product)

    def submit(self, job: Job, data: bytes, answer_by: float | None = None) -> Future:
        """Accept one image. Raises QueueFullError (nothing accepted) or UnknownProductError.
        ``answer_by``: the ``time.perf_counter()`` by which the caller needs the verdict; the
        model leaves out work that would make it late and can wait (typing over turns).

        A queue slot is taken first and the spool write happens outside any lock, so callers on
        several threads write (and fsync) side by side.
        """
        if not self.known_product(job.product):
            raise UnknownProductError(f"unknown product '{job.product}'")
        with self._inflight_lock:
            if (first := self._inflight.get(job.id)) is not None:
                return first  # a retry while the first is still on its way: one part, one answer
            fut: Future = Future()
            self._inflight[job.id] = fut
        try:
            if job.request_id and (done := self._stored(job)) is not None:
                self._inflight.pop(job.id, None)
                fut.set_result(done)
                return fut
            if self._stop.is_set() or not self._slots.acquire(blocking=False):
                self.metrics.rejected_full.inc()
                raise QueueFullError("inspection queue is full")
            try:
                self.spool.put(job, data)
            except BaseException:
                self._slots.release()
                raise
        except BaseException:
            self._inflight.pop(job.id, None)
            raise
        self.queue.put(_Queued(job, fut, time.perf_counter(), answer_by))
        self.metrics.queue_depth.set(self.queue.qsize())
        return fut

    def _stored(self, job: Job) -> Outcome | None:
        """A retry of a request already stored: its first verdict, marked as a replay."""
        try:
            row = stored_outcome(self.recorder.sessions, job.id)
        except SQLAlchemyError:
            return None  # the database is down: inspect again; the store keeps one row per id anyway
        if row is None:
            return None
        return Outcome(**row, flags=["replayed: the first answer to this request_id"])

    def replace_model(self, engine: Engine, recorder: Recorder) -> None:
        """Serve from the next batch on with another model; batches already gathered finish on this one."""
        self._next_model = (engine, recorder)

    def pending_model_dir(self):
        pending = self._next_model
        return pending[0].model_dir.resolve() if pending else None

    def start(self) -> None:
        """Start the worker, then re-queue what an earlier run accepted but never finished (the
        stages run first: a spool can hold more than the queue, the batches in flight included)."""
        for t in self._threads:
            t.start()
        for job in self.spool.pending():
            self._slots.acquire()  # waits for room: nothing dropped
            fut: Future = Future()
            with self._inflight_lock:
                self._inflight[job.id] = fut  # a client's retry of it waits for this answer
            self.queue.put(_Queued(job, fut, time.perf_counter()))
            log.info("re-queued spooled job %s from an earlier run", job.id)

    def stop(self, drain: bool = True, timeout: float = 60.0) -> None:
        """Stop accepting; with ``drain`` finish everything queued first."""
        if drain:
            deadline = time.monotonic() + timeout
            while not self.queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self.decoder.shutdown(wait=True)

    # -- stage 1: gather and decode ------------------------------------------------------------
    def _gather_loop(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            if self._next_model is not None:  # between batches: each verdict names the model that made it
                (self.engine, self.recorder), self._next_model = self._next_model, None
            batch = self._gather(self.engine)
            if batch:
                self._to_infer.put(batch)
        self._to_infer.put(_END)

    def _gather(self, engine: Engine) -> _Batch | None:
        try:
            first = self.queue.get(timeout=0.1)
        except queue.Empty:
            return None
        self._slots.release()
        # A part a PLC waits for goes with what is queued already, without waiting for company: the
        # PLC's handshake holds one part in flight, so none is coming, and the wait is a tenth of its window.
        due = first.answer_by is not None
        jobs, deadline = [first], time.perf_counter() + (0 if due else self.max_wait)
        decoded = [self.decoder.submit(self._decode, first.job, engine, self.recorder.images)]
        while len(jobs) < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                item = self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait()
            except queue.Empty:
                break
            self._slots.release()
            jobs.append(item)
            decoded.append(self.decoder.submit(self._decode, item.job, engine, self.recorder.images))
            if item.answer_by is not None:
                deadline = 0.0
        self.metrics.queue_depth.set(self.queue.qsize())
        self.metrics.batch_size.observe(len(jobs))
        return _Batch(jobs, engine, self.recorder, decoded)

    def _decode(self, job: Job, engine: Engine, images: ImageStore):
        t0 = time.perf_counter()
        data = stored = None
        try:
            data = self.spool.data(job)
            stored = images.put_later(data)  # written while the model runs: its row waits for it, not the line
            image = load_image(data, name=job.source or job.id, max_pixels=engine.max_pixels, draft_size=DRAFT_SIZE)
            return (data, stored), engine.prepare(image, job.product), (image.shape[1], image.shape[0])
        except Exception as exc:  # noqa: BLE001 - becomes this job's error verdict
            return (data, stored), exc, None
        finally:
            self.metrics.stage.labels("decode").observe(time.perf_counter() - t0)

    # -- stage 2: the model --------------------------------------------------------------------
    def _infer_loop(self) -> None:
        while (batch := self._to_infer.get()) is not _END:
            try:
                t0 = time.perf_counter()
                batch.results = self._infer(batch)
                self.metrics.stage.labels("infer").observe(time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001 - _fail logs it; one bad batch must not stop the station
                self._fail(batch, exc)
                continue
            self._to_store.put(batch)
        self._to_store.put(_END)

    def _infer(self, batch: _Batch) -> list[Verdict | Exception]:
        decoded = [f.result() for f in batch.decoded]
        results: list[Verdict | Exception] = [d[1] for d in decoded]  # errors stay; images get verdicts
        by_product: dict[str, list[int]] = {}
        for i, q in enumerate(batch.jobs):
            if not isinstance(decoded[i][1], Exception):
                by_product.setdefault(q.job.product, []).append(i)
        for product, idx in by_product.items():
            due = [t for i in idx if (t := batch.jobs[i].answer_by) is not None]
            answer_by = min(due) - self.store_seconds if due else None  # the store stage comes after
            try:
                views = [decoded[i][1] for i in idx]
                verdicts = batch.engine.inspect_prepared(product, views, [decoded[i][2] for i in idx], answer_by)
            except InspectorError as exc:
                verdicts = [exc] * len(idx)
            for i, v in zip(idx, verdicts, strict=True):
                results[i] = v
        batch.decoded = [d[0] for d in decoded]  # keep the bytes and their file for the store, drop the pixels
        return results

    # -- stage 3: store, then answer -----------------------------------------------------------
    def _store_loop(self) -> None:
        while (batch := self._to_store.get()) is not _END:
            try:
                t0 = time.perf_counter()
                waited = self._finish(batch)
                took = time.perf_counter() - t0
                self.metrics.stage.labels("store").observe(took)
                if not waited:  # a database outage says nothing of what the next batch will take
                    self.store_seconds = max(took, 0.8 * self.store_seconds + 0.2 * took)  # up at once, down slowly
            except Exception as exc:  # noqa: BLE001 - _fail logs it; one bad batch must not stop the station
                self._fail(batch, exc)

    def _fail(self, batch: _Batch, exc: Exception) -> None:
        """A batch that broke: its jobs stay spooled to retry at the next start, each at most
        ``max_attempts`` times; then it goes to the spool's dead letters (and /v1/ready says so)."""
        log.exception("batch failed; its jobs stay spooled and are retried at the next start")
        self.metrics.failed_batches.inc()
        self.last_failure = (time.time(), f"{type(exc).__name__}: {exc}"[:500])
        for job, fut, *_ in batch.jobs:
            if self.spool.failed(job, self.last_failure[1]) >= self.max_attempts:
                self.spool.bury(job)
                self.metrics.dead_jobs.inc()
                log.error("job %s failed %d times: moved to the spool's dead letters", job.id, self.max_attempts)
            self._inflight.pop(job.id, None)
            if not fut.done():
                fut.set_exception(exc)

    def _finish(self, batch: _Batch) -> bool:
        """Store and answer the batch -> whether storing it had to wait for the database."""
        waited = False
        by_product: dict[str, list[int]] = {}
        for i, q in enumerate(batch.jobs):
            by_product.setdefault(q.job.product, []).append(i)
        for product, idx in by_product.items():
            captures = [self.capture(batch.jobs[i].job, *batch.decoded[i]) for i in idx]
            results = [batch.results[i] for i in idx]
            waited |= self._store(batch.recorder, product, captures, results, [batch.jobs[i].job.id for i in idx])
            for i in idx:
                job, fut, t0, _ = batch.jobs[i]
                outcome = self._outcome(job, batch.results[i], batch.recorder, (time.perf_counter() - t0) * 1000)
                self.spool.done(job)
                self.metrics.observe(outcome)
                self._inflight.pop(job.id, None)
                if not fut.done():
                    fut.set_result(outcome)
                for listener in self.listeners:
                    try:
                        listener(job, outcome)
                    except Exception:
                        log.exception("result listener failed for %s", job.id)
        return waited

    @staticmethod
    def capture(job: Job, data: bytes | None, stored: Future[StoredImage] | None = None) -> Capture:
        """``stored``: the image's file, being written (a failed write fails the batch: the jobs stay spooled)."""
        return Capture(job.source or job.id, data, job.captured_at, job.line, job.station, job.camera, job.part_serial,
                       stored.result() if stored else None)  # fmt: skip

    def _store(self, recorder: Recorder, product: str, captures: list[Capture], results: list, ids: list[str]) -> bool:
        """Store one product's verdicts; while the database is down keep retrying (the jobs stay
        spooled). -> whether it had to retry."""
        delay, retried = self.db_retry_s, False
        while True:
            try:
                recorder.record(product, captures, results, ids)
                return retried
            except SQLAlchemyError as exc:
                retried = True
                self.metrics.db_errors.inc()
                log.warning("database write failed (%s); retrying in %.1fs", type(exc).__name__, delay)
                if self._stop.is_set():  # shutting down: the jobs stay spooled for the next start
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    @staticmethod
    def _outcome(job: Job, res: Verdict | Exception, recorder: Recorder, latency_ms: float) -> Outcome:
        base = {
            "inspection_id": job.id,
            "product": job.product,
            "model_version": recorder.model_name,
            "latency_ms": round(latency_ms, 2),
        }
        if isinstance(res, Verdict):
            return Outcome(
                verdict=res.verdict,
                defect_type=res.defect_type,
                confidence=res.confidence,
                defect_score=res.defect_score,
                reject_threshold=res.reject_threshold,
                classifier_score=res.classifier_score,
                anomaly_score=res.anomaly_score,
                reason=res.reason,
                image_only=res.image_only,
                flags=res.flags,
                spot_check=res.verdict == "accept" and spot_checked(job.id, recorder.spot_check_share),
                **base,
            )
        return Outcome(verdict="error", error=str(res), **base)
