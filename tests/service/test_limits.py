"""Limits hold before the body is read (issue #14, items 2 and 8): a chunked upload declares no
size, so the station must stop reading at the limit; an unknown client is refused before the
station reads anything; a revoked key is refused at its next request; which paths are open
without a key is a setting."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from inspector.service.app import asgi_app
from inspector.store.keys import create_api_key, revoke_api_key
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes

LIMIT = 1 << 20
CHUNK = 64 << 10
OFFERED = 256 << 20  # what a hostile client would send; the old station read all of it


@pytest.fixture
def server(service):
    """The station on a real socket (uvicorn in a thread): TestClient hands bodies over whole."""
    app = asgi_app(service, max_body_bytes=LIMIT)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 60
    while not (srv.started and srv.servers) and time.time() < deadline:
        time.sleep(0.05)
    yield srv.servers[0].sockets[0].getsockname()[1]
    srv.should_exit = True
    t.join(30)


def send_chunked(port: int, headers: str = "") -> tuple[int, int]:
    """POST a chunked body of up to OFFERED bytes. -> (status, bytes the server let us send)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(
        (
            "POST /v1/inspect?product=washer HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Transfer-Encoding: chunked\r\n{headers}\r\n"
        ).encode()
    )
    sent, piece = 0, f"{CHUNK:x}\r\n".encode() + b"\0" * CHUNK + b"\r\n"
    s.setblocking(False)
    answer = b""
    while sent < OFFERED:
        try:
            answer += s.recv(65536)
            if answer:
                break
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            break
        try:
            s.sendall(piece)
            sent += CHUNK
        except BlockingIOError:
            time.sleep(0.001)  # the server is not reading: its socket buffers are full
        except (ConnectionResetError, BrokenPipeError):
            break
    s.settimeout(30)
    s.setblocking(True)
    while b"\r\n" not in answer:
        more = s.recv(65536)
        if not more:
            break
        answer += more
    s.close()
    return int(answer.split()[1]), sent


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(server):
    status, sent = send_chunked(server)
    assert status == 413
    assert sent < OFFERED // 4, f"the station read {sent >> 20} MB of a body over its 1 MB limit"


def test_an_unknown_client_is_refused_before_the_station_reads_its_body(server, service):
    with session_factory(service.db_engine)() as s:
        create_api_key(s, "plc", ["L1"])
        s.commit()
    status, sent = send_chunked(server, "X-API-Key: insp_guess\r\n")
    assert status == 401
    assert sent < OFFERED // 4, f"the station read {sent >> 20} MB for a client without a valid key"


def test_revocation_is_immediate_and_open_paths_are_a_setting(service):
    with session_factory(service.db_engine)() as s:
        key = create_api_key(s, "mes")
        s.commit()
    app = asgi_app(service, open_paths=("/v1/health",))
    with TestClient(app) as c:
        headers = {"Content-Type": "image/png", "X-API-Key": key}
        assert c.post("/v1/inspect?product=washer", content=png_bytes(), headers=headers).status_code == 200
        assert c.get("/v1/health").status_code == 200
        for path in ("/metrics", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"X-API-Key": key}).status_code == 200, path
        with session_factory(service.db_engine)() as s:
            revoke_api_key(s, "mes")
            s.commit()
        refused = c.post("/v1/inspect?product=washer", content=png_bytes(), headers=headers)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
        assert c.get("/openapi.json", headers={"X-API-Key": key}).status_code == 401
