"""Accepted-but-unfinished images on disk, so a crash or kill -9 loses nothing.

A job is durable once its metadata file exists (the bytes are written first, both atomically).
It is removed only after its inspection row is stored; on start-up every job still here is
inspected again.
"""

from __future__ import annotations

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
        self._seq = time.time_ns()

    def put(self, job: Job, data: bytes) -> Job:
        self._seq += 1
        job.seq = self._seq
        _atomic_write(self.root / f"{job.id}.bin", data)
        meta = {**asdict(job), "captured_at": job.captured_at.isoformat()}
        _atomic_write(self.root / f"{job.id}.json", json.dumps(meta).encode())
        return job

    def data(self, job: Job) -> bytes:
        return (self.root / f"{job.id}.bin").read_bytes()

    def done(self, job: Job) -> None:
        (self.root / f"{job.id}.json").unlink(missing_ok=True)  # metadata first: the job is then gone
        (self.root / f"{job.id}.bin").unlink(missing_ok=True)

    def pending(self) -> list[Job]:
        """Jobs left by an earlier run, oldest first; half-written leftovers are cleaned up."""
        jobs = []
        for meta in self._metas():
            try:
                d = json.loads(meta.read_text())
                d["captured_at"] = datetime.fromisoformat(d["captured_at"])
                job = Job(**d)
            except (ValueError, TypeError, KeyError):
                meta.rename(meta.with_suffix(".bad"))  # kept for a person to look at, never re-read
                continue
            if (self.root / f"{job.id}.bin").exists():
                jobs.append(job)
            else:
                meta.unlink()
        known = {j.id for j in jobs}
        for stale in self.root.glob("*.bin"):
            if stale.stem not in known and not (self.root / f"{stale.stem}.json").exists():
                stale.unlink()  # bytes whose metadata never landed: the caller was never answered
        for tmp in self.root.glob(".tmp-*"):
            tmp.unlink()
        return sorted(jobs, key=lambda j: j.seq)

    def _metas(self):
        # '.tmp-*' files are writes a crash interrupted: that job was never accepted
        return (p for p in self.root.glob("*.json") if not p.name.startswith("."))

    def __len__(self) -> int:
        return sum(1 for _ in self._metas())
