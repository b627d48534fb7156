"""The PLC handshake, one per camera station: Ready -> Trigger -> Busy -> ResultValid, with a
per-product inspect window. Every trigger source (OPC UA, MQTT, HTTP) goes through ``trigger``.

A result not produced inside the window is reported as a reject with the timeout code
(fail-safe: a part the station could not judge in time never passes), and counted; three late
results in a row put the station in Fault until an operator or the PLC resets it. The late
inspection is still stored when the model finishes, marked late. A trigger the station cannot
take (busy, fault, unknown product, stopped, no image) is refused with its code and nothing is
stored: no part was inspected. The result codes and states are in ``inspector.service.line_state``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import UTC, datetime

from inspector.errors import UnknownProductError
from inspector.service.line_state import (
    BUSY,
    ERROR,
    FAULT,
    NO_IMAGE,
    OVERLOADED,
    PASS,
    STOPPED,
    TIMEOUT,
    UNKNOWN_PRODUCT,
    UNNAMED,
    HandshakeState,
    LineResult,
    TriggerRefused,
)
from inspector.service.spool import Job
from inspector.service.worker import InspectionWorker, Outcome, QueueFullError

log = logging.getLogger(__name__)


def result_code(outcome: Outcome, defect_types: list[str]) -> int:
    if outcome.verdict == "error":
        return ERROR
    if outcome.verdict == "accept":
        return PASS
    if outcome.defect_type in defect_types:
        return 1 + defect_types.index(outcome.defect_type)
    return UNNAMED


class Handshake:
    """``windows_ms``: per-product inspect window (``default_window_ms`` for the others).
    ``grab``: where an image comes from when a trigger brings none (a camera's latest frame).
    ``mark_late(inspection_ids)``: stores the late flag (the store's ``mark_late``).
    Listeners are called with the state after every change (OPC UA nodes, Sparkplug B)."""

    def __init__(
        self,
        worker: InspectionWorker,
        product: str = "",
        line: str = "",
        station: str = "",
        camera: str = "plc",
        default_window_ms: float = 100.0,
        windows_ms: dict[str, float] | None = None,
        fault_after: int = 3,
        grab: Callable[[], bytes] | None = None,
        mark_late: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.worker, self.line, self.station, self.camera = worker, line, station, camera
        self.default_window_ms, self.windows_ms = default_window_ms, dict(windows_ms or {})
        self.fault_after, self.grab, self.mark_late = fault_after, grab, mark_late
        self.s = HandshakeState(product=product)
        self.listeners: list[Callable[[HandshakeState], None]] = []
        self._lock = threading.Lock()
        self._late = ThreadPoolExecutor(1, thread_name_prefix="late-results")  # never on the store thread
        self._window_checked: set[tuple[str, str]] = set()  # (model version, product) said once each

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self.s.state == "stopped":
                self.s.state = "ready"
        self._changed()

    def stop(self) -> None:
        with self._lock:
            self.s.state = "stopped"
        self._changed()

    def close(self) -> None:
        self._late.shutdown(wait=True)

    def reset(self) -> None:
        """Clear a Fault (and an unacknowledged result): the station is Ready again."""
        with self._lock:
            if self.s.state == "fault":
                self.s.state = "ready"
            self.s.result_valid = False
            self.s.counters.late_in_a_row, self.s.error_code, self.s.error = 0, 0, ""
        self._changed()

    def select_product(self, product: str) -> None:
        if not self.worker.known_product(product):
            self._refuse(UNKNOWN_PRODUCT, f"unknown product '{product}'")
        with self._lock:
            self.s.product = product
        self._changed()

    def window_ms(self, product: str) -> float:
        return self.windows_ms.get(product, self.default_window_ms)

    def window_warning(self, product: str) -> str | None:
        """Whether the model alone takes over half ``product``'s inspect window here (``part_ms``,
        timed at warm-up): with decoding, storing and the handshake around it, and a busy CPU, a
        part then misses the window, a fail-safe timeout, and three in a row fault the station
        (the demo model on a 2-core CPU: 60-90 ms alone, 5 of 6 parts late at 100 ms;
        docs/service.md). Said at a product's first trigger, not found by the line's first Fault."""
        ms, window = self.worker.engine.part_ms.get(product), self.window_ms(product)
        if ms is None or ms <= window / 2:
            return None
        return (
            f"{product}: the model alone takes {ms:.0f} ms of its {window:g} ms inspect window on this "
            f"machine; with decoding, storing and the handshake a part may come late, a fail-safe reject, "
            f"and {self.fault_after} in a row a Fault: widen service.handshake.windows_ms or serve on a GPU"
        )

    def defect_types(self, product: str) -> list[str]:
        return self.worker.engine.defect_types(product)

    # -- the cycle ---------------------------------------------------------------------------------
    def trigger(
        self, image: bytes | None = None, part_serial: str = "", product: str = "", acknowledge: bool = False
    ) -> LineResult:
        """Inspect one part within its window -> the result the PLC reads (ResultValid).
        ``acknowledge``: the caller has no separate acknowledge step (HTTP, MQTT)."""
        t0 = time.perf_counter()
        with self._lock:
            product = product or self.s.product
            if not self.s.ready:
                code = {"ready": BUSY, "busy": BUSY, "fault": FAULT, "stopped": STOPPED}[self.s.state]
                why = {BUSY: "busy with the previous part (or its result not acknowledged)",
                       FAULT: "in Fault after late results: reset it", STOPPED: "stopped: start it"}[code]  # fmt: skip
                refusal = (code, f"trigger refused: station {why}")
            elif not product or not self.worker.known_product(product):
                refusal = (UNKNOWN_PRODUCT, f"unknown product '{product}'")
            else:
                refusal = None
                self.s.state, self.s.result, self.s.error_code, self.s.error = "busy", None, 0, ""
                self.s.counters.triggers += 1
                number = self.s.counters.triggers
        if refusal:
            self._refuse(*refusal)
        if (key := (self.worker.engine.version, product)) not in self._window_checked:
            self._window_checked.add(key)
            if warning := self.window_warning(product):
                log.warning(warning)
        self._changed()
        try:
            result = self._inspect(number, image, part_serial, product, t0)
        except TriggerRefused:
            with self._lock:
                self.s.state = "ready"
                self.s.counters.triggers -= 1
            raise
        with self._lock:
            c = self.s.counters
            c.results += 1
            c.timeouts += result.late
            c.late_in_a_row = c.late_in_a_row + 1 if result.late else 0
            self.s.result, self.s.result_valid = result, not acknowledge  # the result is delivered either way
            if c.late_in_a_row >= self.fault_after:
                self.s.state = "fault"
                self.s.error_code, self.s.error = FAULT, f"{c.late_in_a_row} late results in a row"
                log.error("handshake fault: %d late results in a row", c.late_in_a_row)
            else:
                self.s.state = "ready"
        self._changed()
        return result

    def acknowledge(self) -> None:
        """The PLC read the result (it dropped Trigger): ResultValid off, Ready again."""
        with self._lock:
            self.s.result_valid = False
        self._changed()

    def _inspect(self, number: int, image: bytes | None, serial: str, product: str, t0: float) -> LineResult:
        if image is None and self.grab is not None:
            image = self.grab()
        if not image:
            raise TriggerRefused(NO_IMAGE, "no image with the trigger and no camera to grab one")
        job = Job(id=str(uuid.uuid4()), product=product, source=f"plc:{product}", line=self.line,
                  station=self.station, camera=self.camera, part_serial=serial or None)  # fmt: skip
        window = self.window_ms(product) / 1000
        try:
            future = self.worker.submit(job, image, answer_by=t0 + window)
        except UnknownProductError as exc:  # the model was swapped since the check
            raise TriggerRefused(UNKNOWN_PRODUCT, str(exc)) from None
        except QueueFullError as exc:
            return self._failsafe(number, job, OVERLOADED, t0, stored=False, image=image, why=exc)
        except Exception as exc:  # the spool could not take it (disk full...): the part must not pass
            log.exception("trigger %d: not accepted", number)
            return self._failsafe(number, job, ERROR, t0, stored=False, image=image, why=exc)
        try:
            outcome: Outcome = future.result(timeout=max(0.0, window - (time.perf_counter() - t0)))
        except FutureTimeout:
            future.add_done_callback(lambda f: self._late.submit(self._stored_late, f))
            return self._failsafe(number, job, TIMEOUT, t0, stored=True)
        except Exception:  # the worker failed the batch: the part must not pass
            log.exception("inspection failed for trigger %d", number)
            return self._failsafe(number, job, ERROR, t0, stored=True)
        code = result_code(outcome, self.defect_types(product))
        verdict = "reject" if code in (ERROR,) else outcome.verdict
        return LineResult(number, outcome.inspection_id, product, verdict, code, outcome.defect_type,
                          float(outcome.confidence or 0.0), datetime.now(UTC), serial, False,
                          (time.perf_counter() - t0) * 1000, outcome.model_version)  # fmt: skip

    def _failsafe(
        self,
        number: int,
        job: Job,
        code: int,
        t0: float,
        stored: bool,
        image: bytes = b"",
        why: Exception | None = None,
    ) -> LineResult:
        if not stored:  # the worker never took it: the part is still one stored inspection, an error
            try:
                capture = InspectionWorker.capture(job, image)
                self.worker.recorder.record(job.product, [capture], [why or RuntimeError("not accepted")], [job.id])
            except Exception:  # the database is down too: the line still gets its reject
                log.exception("trigger %d: not accepted and not stored", number)
        return LineResult(number, job.id, job.product, "reject", code, None, 1.0, datetime.now(UTC),
                          job.part_serial or "", code == TIMEOUT, (time.perf_counter() - t0) * 1000)  # fmt: skip

    def _stored_late(self, future: Future) -> None:
        if future.exception() is not None or self.mark_late is None:
            return
        try:
            self.mark_late([future.result().inspection_id])
            with self._lock:
                self.s.counters.late_stored += 1
        except Exception:  # the row stays, without its late mark; said in the log
            log.exception("could not mark a late inspection")

    def _refuse(self, code: int, message: str) -> None:
        with self._lock:
            self.s.counters.refused += 1
            self.s.error_code, self.s.error = code, message
        self._changed()
        raise TriggerRefused(code, message)

    def snapshot(self) -> HandshakeState:
        with self._lock:
            return replace(self.s, counters=replace(self.s.counters))

    def _changed(self) -> None:
        if not self.listeners:
            return
        state = self.snapshot()
        for listener in self.listeners:
            try:
                listener(state)
            except Exception:  # an output adapter must not stop the line
                log.exception("handshake listener failed")
