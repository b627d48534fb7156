"""kill -9 in the middle of a stream of requests loses nothing that was accepted."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import create_engine, select

from inspector.store import Inspection
from tests.service.conftest import png_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home, model, port):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "serve",
            "--home",
            str(home),
            "--model",
            str(model),
            "--port",
            str(port),
            "--device",
            "cpu",
            "--max-wait-ms",
            "200",
            "--max-batch",
            "4",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("service did not become ready")


def spooled(spool) -> set[str]:
    return {p.stem for p in spool.glob("*.job") if not p.name.startswith(".")}  # .tmp-*: never accepted


@pytest.mark.parametrize("moment", ["before any answer", "after the first answer", "again while replaying"])
def test_sigkill_then_restart_stores_every_accepted_image(tmp_path, trained_model, moment):
    """kill -9 at three moments: while images are being accepted and none is answered yet; in
    the middle of a stream (batches accepted, inferring, storing); and a second time while the
    restarted station re-inspects what the first one left."""
    port = free_port()
    proc = start(tmp_path, trained_model, port)
    answered: list[str] = []
    spool = tmp_path / "spool"

    def send(i: int) -> None:
        try:
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/inspect?product=washer",
                content=png_bytes("spot", i),
                headers={"Content-Type": "image/png"},
                timeout=30,
            )
            if r.status_code == 200:
                answered.append(r.json()["inspection_id"])
        except httpx.HTTPError:
            pass  # the server died under this request

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    if moment == "before any answer":
        while len(spooled(spool)) < 3 and proc.poll() is None:
            time.sleep(0.005)
    else:
        while not answered and proc.poll() is None:
            time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for t in threads:
        t.join()
    leftover = spooled(spool)
    assert leftover or answered, "something was accepted before the kill"

    proc = start(tmp_path, trained_model, port)  # restart: re-inspects the spool
    if moment == "again while replaying":
        os.kill(proc.pid, signal.SIGKILL)  # ready answers while the replay is still going
        proc.wait()
        proc = start(tmp_path, trained_model, port)
    deadline = time.monotonic() + 60
    while spooled(spool) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    engine = create_engine(f"sqlite:///{tmp_path / 'inspector.db'}")
    with engine.connect() as conn:
        stored = list(conn.scalars(select(Inspection.uuid)))
    engine.dispose()
    assert len(stored) == len(set(stored))  # nothing doubled
    assert set(answered) <= set(stored)  # every answered verdict was stored before the answer
    assert leftover <= set(stored)  # every accepted-but-unfinished image was inspected after the restart
    assert not [p for p in spool.glob("*.job") if not p.name.startswith(".tmp-")]
