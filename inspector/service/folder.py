"""Hot-folder input: images dropped into ``<watch>/<product>/`` are inspected, then moved to
``done/<product>/`` (with the verdict as JSON beside them) or ``rejected/<product>/`` (with a
``.reason.txt``) when they could not be inspected.

A file is read only once its size and modification time have held still for ``settle_s``, so
a camera or copy still writing it is never read half-done. A job's id derives from the file's
path, size and time: after a restart the same file maps to the same inspection, never two.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from inspector.dataset import IMAGE_SUFFIXES
from inspector.errors import UnknownProductError
from inspector.service.spool import Job
from inspector.service.worker import InspectionWorker, Outcome, QueueFullError

if TYPE_CHECKING:
    from inspector.service.adapters import Station

log = logging.getLogger(__name__)
DONE, REJECTED = "done", "rejected"


class FolderInput:
    name = "folder"

    def __init__(
        self,
        root: Path,
        worker: InspectionWorker,
        line: str = "",
        station: str = "",
        settle_s: float = 1.0,
        poll_s: float = 0.25,
    ) -> None:
        self.root, self.worker, self.line, self.station = Path(root), worker, line, station
        self.settle_s, self.poll_s = settle_s, poll_s
        self._seen: dict[Path, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, first seen stable)
        self._in_flight: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folder-input", daemon=True)
        self.root.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _candidates(self):
        for product_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name not in (DONE, REJECTED)):
            for f in sorted(product_dir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
                    yield product_dir.name, f

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:
                log.exception("hot folder scan failed; retrying")
            self._stop.wait(self.poll_s)

    def scan(self) -> int:
        """One pass: submit every settled file. -> files submitted."""
        submitted, now = 0, time.monotonic()
        for product, f in self._candidates():
            with self._lock:
                if f in self._in_flight:
                    continue
            try:
                st = f.stat()
            except FileNotFoundError:
                continue
            key = (st.st_size, st.st_mtime_ns)
            prev = self._seen.get(f)
            if prev is None or prev[:2] != key:
                self._seen[f] = (*key, now)  # changed since last look: still being written
                continue
            if now - prev[2] < self.settle_s:
                continue
            if st.st_size == 0:  # settled and still empty: nothing will come; say so instead of waiting forever
                self._move(f, product, REJECTED, reason=f"{f.name}: empty file")
                self._seen.pop(f, None)
                continue
            if self._submit(product, f, st):
                submitted += 1
            else:
                break  # queue full: wait for the next pass, keep order
        return submitted

    def _submit(self, product: str, f: Path, st) -> bool:
        job_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"))
        job = Job(id=job_id, product=product, source=str(f), line=self.line, station=self.station)
        try:
            future = self.worker.submit(job, f.read_bytes())
        except QueueFullError:
            return False
        except UnknownProductError as exc:
            self._move(f, product, REJECTED, reason=str(exc))
            return True
        with self._lock:
            self._in_flight.add(f)
        future.add_done_callback(lambda fut, f=f, product=product: self._finish(f, product, fut))
        return True

    def _finish(self, f: Path, product: str, fut) -> None:
        try:
            outcome: Outcome = fut.result()
            if outcome.verdict == "error":
                self._move(f, product, REJECTED, reason=outcome.error or "could not be inspected")
            else:
                self._move(f, product, DONE, verdict=asdict(outcome))
        except Exception as exc:  # noqa: BLE001 - the file stays for the next pass
            log.warning("%s not finished (%s); it will be retried", f, exc)
        finally:
            with self._lock:
                self._in_flight.discard(f)
            self._seen.pop(f, None)

    def _move(self, f: Path, product: str, where: str, reason: str | None = None, verdict: dict | None = None) -> None:
        dest_dir = self.root / where / product
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f.name
        if dest.exists():
            dest = dest_dir / f"{f.stem}-{int(time.time() * 1000)}{f.suffix}"
        f.replace(dest)
        if reason is not None:
            dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n")
        if verdict is not None:
            dest.with_name(dest.name + ".json").write_text(json.dumps(verdict, indent=2))


def from_settings(station: Station) -> FolderInput | None:
    cfg = station.settings.service
    return FolderInput(cfg.watch, station.worker, line=cfg.line, station=cfg.station) if cfg.watch else None
