"""A simulated line: replay images through a running station over HTTP, as a line would."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import httpx

from inspector.service.app import Service, asgi_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(service: Service, **app_kwargs):
    """Serve ``service`` on a free 127.0.0.1 port in a thread; -> base URL. Stops gracefully."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(asgi_app(service, **app_kwargs), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def replay(
    url: str,
    parts: Iterable[tuple[str, Path]],
    rate: float,
    line: str = "demo",
    station: str = "S1",
    on_result: Callable[[Path, dict], None] | None = None,
) -> list[dict]:
    """POST each (product, image) at ``rate`` per second; -> the answers."""
    answers = []
    with httpx.Client(timeout=60) as client:
        for i, (product, path) in enumerate(parts):
            if i:
                time.sleep(1 / rate)
            r = client.post(
                f"{url}/v1/inspect",
                params={
                    "product": product,
                    "line": line,
                    "station": station,
                    "camera": "replay",
                    "part_serial": path.stem,
                },
                content=path.read_bytes(),
                headers={"Content-Type": "image/png"},
            )
            if not r.headers.get("content-type", "").startswith("application/json"):
                raise RuntimeError(f"station answered {r.status_code} for {path.name}: {r.text[:200]}")
            body = r.json()
            answers.append(body)
            if on_result:
                on_result(path, body)
    return answers
