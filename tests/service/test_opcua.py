"""The OPC UA server as a PLC meets it: an asyncua client signs in with a store user, drives the
Ready -> Trigger -> Busy -> ResultValid handshake and reads the result; bad credentials,
anonymous access, an unknown recipe and a trigger while busy get their documented codes, and
the server keeps serving. The server runs in a process of its own: killed, it comes back with the
handshake's state; a killed station takes it down with it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadIdentityTokenRejected, BadUserAccessDenied

from inspector.service import line_state as ls
from inspector.service.opcua import NAMESPACE
from inspector.service.opcua_process import OpcUaProcess, from_settings
from inspector.services import create_user
from inspector.store.session import session_factory
from tests.service.conftest import png_bytes

USER, PASSWORD = "plc-line1", "plc-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(service, service_settings):
    from inspector.service.adapters import Station
    from inspector.settings import OpcUaSettings

    with session_factory(service.db_engine)() as s:
        create_user(s, USER, PASSWORD, "operator")
        s.commit()
    service_settings.service.opcua = OpcUaSettings(endpoint=f"opc.tcp://127.0.0.1:{free_port()}/inspector")
    service.handshake.windows_ms["washer"] = 60_000  # a slow CI machine still answers inside it
    service.worker.start()
    adapter = from_settings(Station(service_settings, service.worker, service.handshake, service.db_engine))
    assert isinstance(adapter, OpcUaProcess)
    adapter.start()
    yield adapter
    adapter.stop()
    service.worker.stop(drain=True)
    service.handshake.close()


async def node(client: Client, *path: str):
    idx = await client.get_namespace_index(NAMESPACE)
    return await client.nodes.objects.get_child([f"{idx}:{p}" for p in path])


async def until(n, value, timeout: float = 60.0) -> None:
    async def poll():
        while await n.read_value() != value:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_a_plc_runs_the_handshake_and_reads_the_result(server, service):
    async def plc():
        async with Client(server.endpoint):  # no anonymous access
            pass

    with pytest.raises((BadIdentityTokenRejected, BadUserAccessDenied)):
        asyncio.run(plc())

    async def wrong_password():
        c = Client(server.endpoint)
        c.set_user(USER)
        c.set_password("not-the-password")
        async with c:
            pass

    with pytest.raises(BadUserAccessDenied):
        asyncio.run(wrong_password())

    async def cycle():
        c = Client(server.endpoint)
        c.set_user(USER)
        c.set_password(PASSWORD)
        async with c:
            vs = ("VisionSystem",)
            code = await (await node(c, *vs, "RecipeManagement")).call_method(
                f"{await c.get_namespace_index(NAMESPACE)}:ActivateRecipe", "no-such-part"
            )
            assert code == ls.UNKNOWN_PRODUCT
            code = await (await node(c, *vs, "RecipeManagement")).call_method(
                f"{await c.get_namespace_index(NAMESPACE)}:ActivateRecipe", "washer"
            )
            assert code == 0
            ready, busy, valid = [await node(c, *vs, "Handshake", n) for n in ("Ready", "Busy", "ResultValid")]
            await until(ready, True)
            assert await (await node(c, *vs, "RecipeManagement", "ProductId")).read_value() == "washer"
            assert await (await node(c, *vs, "RecipeManagement", "ModelVersion")).read_value()
            await (await node(c, *vs, "Handshake", "PartSerial")).write_value("SN-OPC-1")
            await (await node(c, *vs, "Handshake", "Image")).write_value(
                ua.Variant(png_bytes("scratch"), ua.VariantType.ByteString)
            )
            trigger = await node(c, *vs, "Handshake", "Trigger")
            await trigger.write_value(True)
            await until(valid, True)
            assert await busy.read_value() is False and await ready.read_value() is False
            res = {
                n: await (await node(c, *vs, "ResultManagement", "Results", n)).read_value()
                for n in ("InspectionId", "Verdict", "ResultCode", "PartSerial", "Late", "TriggerCount")
            }
            # a trigger while the result is not yet acknowledged: refused, with its code
            idx = await c.get_namespace_index(NAMESPACE)
            out = await (await node(c, *vs)).call_method(
                f"{idx}:StartSingleJob", "SN-X", ua.Variant(png_bytes("ok"), ua.VariantType.ByteString)
            )
            assert out[0] == ls.BUSY
            await trigger.write_value(False)  # the PLC acknowledges
            await until(ready, True)
            assert await valid.read_value() is False
            # the same cycle in one method call
            out = await (await node(c, *vs)).call_method(
                f"{idx}:StartSingleJob", "SN-OPC-2", ua.Variant(png_bytes("ok", seed=3), ua.VariantType.ByteString)
            )
            return res, out

    res, single = asyncio.run(cycle())
    assert res["PartSerial"] == "SN-OPC-1" and res["Late"] is False and res["TriggerCount"] == 1
    assert res["Verdict"] in ("accept", "review", "reject")
    assert (res["ResultCode"] == 0) == (res["Verdict"] == "accept")
    assert single[0] in (0, 1, 2, ls.UNNAMED) and single[1] in ("accept", "review", "reject")

    from sqlalchemy import select

    from inspector.store import Inspection

    with session_factory(service.db_engine)() as s:
        rows = {r.uuid: r for r in s.scalars(select(Inspection))}
    assert set(rows) == {res["InspectionId"], single[2]}  # one stored inspection per triggered part
    assert rows[res["InspectionId"]].part_serial == "SN-OPC-1"
    assert rows[res["InspectionId"]].verdict == res["Verdict"]


async def signed_in(endpoint: str, *path: str):
    c = Client(endpoint)
    c.set_user(USER)
    c.set_password(PASSWORD)
    async with c:
        return await (await node(c, "VisionSystem", *path)).read_value()


def test_the_server_runs_apart_from_the_model_and_comes_back_when_killed(server, service):
    """PLC reads must not take the model's interpreter; a server process that dies is replaced,
    and the new one shows the handshake as it is (the state is the station's)."""
    first = server.process.pid
    assert first != os.getpid()
    service.handshake.select_product("washer")
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while server.restarts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.restarts == 1 and server.process.pid != first
    assert asyncio.run(signed_in(server.endpoint, "SystemState")) == "Ready"
    assert asyncio.run(signed_in(server.endpoint, "RecipeManagement", "ProductId")) == "washer"

    async def single_job():
        c = Client(server.endpoint)
        c.set_user(USER)
        c.set_password(PASSWORD)
        async with c:
            idx = await c.get_namespace_index(NAMESPACE)
            image = ua.Variant(png_bytes("ok"), ua.VariantType.ByteString)
            return await (await node(c, "VisionSystem")).call_method(f"{idx}:StartSingleJob", "SN-AFTER", image)

    out = asyncio.run(single_job())
    assert out[1] in ("accept", "review", "reject") and out[2]


def test_a_server_that_cannot_start_says_why(service, service_settings):
    from inspector.service.adapters import Station
    from inspector.settings import OpcUaSettings

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service_settings.service.opcua = OpcUaSettings(endpoint=f"opc.tcp://127.0.0.1:{port}/inspector")
        adapter = from_settings(Station(service_settings, service.worker, service.handshake, service.db_engine))
        with pytest.raises(RuntimeError, match="could not start"):
            adapter.start()
    assert not adapter.process or not adapter.process.is_alive()


def test_a_killed_station_takes_its_server_process_with_it(tmp_path, trained_model):
    """SIGKILL gives the station no chance to stop anything: the server process sees its pipe
    close and ends, so no orphan keeps the port or tells a PLC it is Ready."""
    port, http = free_port(), free_port()
    cmd = [sys.executable, "-m", "inspector", "serve", "--home", str(tmp_path), "--model", str(trained_model),
           "--port", str(http), "--opcua", f"opc.tcp://127.0.0.1:{port}/inspector"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        deadline = time.monotonic() + 180
        while not listening() and time.monotonic() < deadline:
            assert proc.poll() is None, "the station ended before its OPC UA server listened"
            time.sleep(0.2)
        assert listening()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 30
        while listening() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not listening()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_simulate_line_drives_the_handshake_and_checks_the_labels(server, tmp_path, monkeypatch, capsys):
    """``inspector simulate-line`` as the PLC: labelled parts from a product folder, every result read."""
    import json

    from inspector.cli import main
    from tests.helpers.synthetic import make_product

    folder = make_product(tmp_path, "washer", per_class=2)
    monkeypatch.setenv("INSPECTOR_PLC_PASSWORD", PASSWORD)
    argv = ["simulate-line", str(folder), "--endpoint", server.endpoint, "--user", USER, "--product", "washer",
            "--rate", "5", "--count", "6", "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parts"] == report["results"] == report["labelled"] == 6
    assert report["lost"] == 0 and report["timeouts"] == 0 and not report["refused"]
    assert set(report["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert sum(report["verdicts"].values()) == 6


def test_with_a_certificate_only_an_encrypted_channel_is_offered(service, service_settings, tmp_path):
    """Basic256Sha256 Sign&Encrypt with the station's certificate: a store user signs in over it,
    a client certificate listed as trusted is a user of its own, and a plain client finds no endpoint."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from inspector.service.adapters import Station
    from inspector.service.opcua import APPLICATION_URI
    from inspector.settings import OpcUaSettings

    def make(name: str, uri: str, use) -> tuple:
        key, cert = tmp_path / f"{name}-key.pem", tmp_path / f"{name}-cert.der"
        asyncio.run(setup_self_signed_certificate(key, cert, uri, "127.0.0.1", [use], {"commonName": name}))
        return cert, key

    server_cert, server_key = make("station", APPLICATION_URI, ExtendedKeyUsageOID.SERVER_AUTH)
    plc_cert, plc_key = make("plc", "urn:inspector:test-plc", ExtendedKeyUsageOID.CLIENT_AUTH)
    with session_factory(service.db_engine)() as s:
        create_user(s, USER, PASSWORD, "operator")
        s.commit()
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/inspector"
    service_settings.service.opcua = OpcUaSettings(
        endpoint=endpoint, certificate=server_cert, private_key=server_key, trusted_certs=[plc_cert]
    )
    adapter = from_settings(Station(service_settings, service.worker, service.handshake, service.db_engine))
    adapter.start()
    try:

        async def secure(user: str | None, cert=plc_cert, key=plc_key) -> str:
            c = Client(endpoint)
            c.application_uri = "urn:inspector:test-plc"
            await c.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), server_certificate=str(server_cert))
            if user:
                c.set_user(user)
                c.set_password(PASSWORD)
            else:  # the client certificate as the user token
                await c.load_client_certificate(str(cert))
                await c.load_private_key(str(key))
            async with c:
                return await (await node(c, "VisionSystem", "SystemState")).read_value()

        assert asyncio.run(secure(USER)) == "Ready"
        assert asyncio.run(secure(None)) == "Ready"
        stranger_cert, stranger_key = make("stranger", "urn:inspector:test-plc", ExtendedKeyUsageOID.CLIENT_AUTH)
        with pytest.raises(BadUserAccessDenied):  # a certificate nobody listed is no user
            asyncio.run(secure(None, stranger_cert, stranger_key))

        async def plain():
            c = Client(endpoint)
            c.set_user(USER)
            c.set_password(PASSWORD)
            async with c:
                pass

        with pytest.raises(Exception):  # noqa: B017 - asyncua raises its own error for a missing endpoint
            asyncio.run(plain())
    finally:
        adapter.stop()
        service.handshake.close()
