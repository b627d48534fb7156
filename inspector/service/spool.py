"""Accepted-but-unfinished images on disk, so a crash or kill -9 loses nothing.

One file per job, ``<id>.job``: a line of JSON metadata, then the image bytes. It is written
to a temporary name, fsynced and renamed, so a job is either whole or absent (one fsync per
accepted image: that is the price of an answer that survives a kill). It is removed only after
its inspection row is stored; on start-up every job still here is inspected again.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from inspector.store.base import utcnow


@dataclass
class Job:
    id: str
    product: str
    source: str = ""
    line: str = ""
    station: str = ""
    camera: str = ""
    part_serial: str | None = None
    captured_at: datetime = field(default_factory=utcnow)
    seq: int = 0
    request_id: str | None = None  # the client's own id: a retry with it gets the first verdict


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(time.time_ns())  # next() is atomic: inputs on several threads

    def _path(self, job_id: str) -> Path:
        return self.root / f"{job_id}.job"

    def put(self, job: Job, data: bytes) -> Job:
        job.seq = next(self._seq)
        meta = {**asdict(job), "captured_at": job.captured_at.isoformat()}
        _atomic_write(self._path(job.id), json.dumps(meta).encode() + b"\n" + data)
        return job

    def data(self, job: Job) -> bytes:
        with open(self._path(job.id), "rb") as f:
            f.readline()
            return f.read()

    def done(self, job: Job) -> None:
        self._path(job.id).unlink(missing_ok=True)
        self._attempts(job.id).unlink(missing_ok=True)

    def failed(self, job: Job, why: str) -> int:
        """Count a failed attempt at ``job``. -> attempts so far."""
        n = self.attempts(job.id) + 1
        self._attempts(job.id).write_text(f"{n}\n{why[:2000]}\n")
        return n

    def attempts(self, job_id: str) -> int:
        try:
            return int(self._attempts(job_id).read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return 0

    def bury(self, job: Job) -> Path:
        """Move a job that keeps failing to ``dead/`` (with why), out of the way of good work."""
        dead = self.root / "dead"
        dead.mkdir(exist_ok=True)
        os.replace(self._path(job.id), dead / f"{job.id}.job")
        if self._attempts(job.id).exists():
            os.replace(self._attempts(job.id), dead / f"{job.id}.why")
        return dead / f"{job.id}.job"

    def _attempts(self, job_id: str) -> Path:
        return self.root / f"{job_id}.attempts"

    def pending(self) -> list[Job]:
        """Jobs left by an earlier run, oldest first; interrupted writes are cleaned up."""
        jobs = []
        for path in self._jobs():
            try:
                with open(path, "rb") as f:
                    d = json.loads(f.readline())
                d["captured_at"] = datetime.fromisoformat(d["captured_at"])
                jobs.append(Job(**d))
            except (ValueError, TypeError, KeyError):
                path.rename(path.with_suffix(".bad"))  # kept for a person to look at, never re-read
        for tmp in self.root.glob(".tmp-*"):
            tmp.unlink()  # a write a crash interrupted: that job was never accepted
        return sorted(jobs, key=lambda j: j.seq)

    def _jobs(self):
        return (p for p in self.root.glob("*.job") if not p.name.startswith("."))

    def __len__(self) -> int:
        return sum(1 for _ in self._jobs())
