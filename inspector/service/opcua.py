"""OPC UA server (asyncua) for PLCs, laid out along the OPC 40100 machine-vision model.

Objects/VisionSystem:
- ``SystemState`` (Ready, Busy, ResultValid, Error, Stopped) and the handshake bits under
  ``Handshake``: the PLC writes ``PartSerial``, optionally ``Image`` (ByteString; without it the
  station's camera takes the picture) and sets ``Trigger``; the station drops ``Ready``, sets
  ``Busy``, then publishes ``Results`` and sets ``ResultValid``; the PLC reads the result and drops
  ``Trigger``; ``ResultValid`` goes off and ``Ready`` on. ``ErrorCode``/``Error`` say why a trigger
  was refused (codes in ``inspector.service.handshake``).
- ``RecipeManagement``: ``ProductId``, ``ManualVersion``, ``ModelVersion``; method
  ``ActivateRecipe(ProductId) -> ErrorCode``.
- ``ResultManagement/Results``: ``InspectionId``, ``Verdict``, ``ResultCode``, ``DefectType``,
  ``Confidence``, ``Timestamp``, ``ImageId``, ``PartSerial``, ``Late``, ``LatencyMs``,
  ``TriggerCount``; ``Counters``: ``Triggers``, ``Results``, ``Timeouts``, ``Refused``.
- Methods ``Start``, ``Stop``, ``Reset`` (clears Fault) and ``StartSingleJob(PartSerial, Image) ->
  (ResultCode, Verdict, InspectionId, Confidence)``, the same cycle in one call.

Security: anonymous access is off unless configured; users sign in with the store's user names
and passwords (operator or engineer); with a certificate and key the endpoint is
Basic256Sha256 Sign&Encrypt only (passwords never cross the wire in clear) and X.509 user tokens
are accepted from the certificates in ``trusted_certs``.

The station runs this server in a process of its own (``inspector.service.opcua_process``); here
it serves whatever offers the handshake's calls (``LineControl``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from asyncua import Server, ua, uamethod
from asyncua.common.callback import CallbackType
from asyncua.crypto.permission_rules import User, UserRole

from inspector.service.line_state import HandshakeState, LineResult, TriggerRefused

log = logging.getLogger(__name__)
NAMESPACE = "urn:inspector:machine-vision"
APPLICATION_URI = "urn:inspector:station"


class LineControl(Protocol):
    """What the server needs of the station's handshake (``Handshake`` offers it)."""

    listeners: list[Callable[[HandshakeState], None]]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def reset(self) -> None: ...
    def acknowledge(self) -> None: ...
    def select_product(self, product: str) -> None: ...
    def snapshot(self) -> HandshakeState: ...
    def trigger(
        self, image: bytes | None = None, part_serial: str = "", product: str = "", acknowledge: bool = False
    ) -> LineResult: ...


class StoreUsers:
    """asyncua user manager: a store user's name and password, a trusted certificate, or (only
    when allowed) anonymous."""

    def __init__(self, check: Callable[[str, str], bool], allow_anonymous: bool, trusted: list[bytes]) -> None:
        self.check, self.allow_anonymous, self.trusted = check, allow_anonymous, trusted

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
        if username is not None:
            ok = bool(password) and self.check(username, password)
            if not ok:
                log.warning("OPC UA: refused user '%s'", username[:100])
            return User(role=UserRole.User, name=username) if ok else None
        if certificate is not None:
            from cryptography.hazmat.primitives.serialization import Encoding

            der = certificate.public_bytes(Encoding.DER) if hasattr(certificate, "public_bytes") else certificate
            return User(role=UserRole.User, name="certificate") if der in self.trusted else None
        return User(role=UserRole.User, name="anonymous") if self.allow_anonymous else None


class OpcUaServer:
    """The server in its own thread and event loop."""

    def __init__(
        self,
        handshake: LineControl,
        endpoint: str = "opc.tcp://127.0.0.1:4840/inspector",
        users: Callable[[str, str], bool] | None = None,
        allow_anonymous: bool = False,
        certificate: Path | None = None,
        private_key: Path | None = None,
        trusted_certs: list[Path] | None = None,
        recipe: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self.handshake, self.endpoint = handshake, endpoint
        self.users = users or (lambda _u, _p: False)
        self.allow_anonymous = allow_anonymous
        self.certificate, self.private_key, self.trusted_certs = certificate, private_key, trusted_certs or []
        self.recipe = recipe or (lambda _p: ("", ""))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._started, self._stopping = threading.Event(), None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="opcua-server", daemon=True)
        self._trigger_level = False
        self.nodes: dict[str, object] = {}
        self._updates: asyncio.Queue | None = None

    # -- lifecycle (any thread) ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the OPC UA server did not start within 30 s")
        if self._error is not None:
            raise RuntimeError(f"the OPC UA server could not start: {self._error}") from self._error
        self.handshake.listeners.append(self._on_state)

    def stop(self) -> None:
        if self.loop is not None and self._stopping is not None:
            self.loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the station's other inputs keep running
            self._error = exc
            self._started.set()
            log.exception("OPC UA server failed")
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stopping, self._updates = asyncio.Event(), asyncio.Queue()
        trusted = [Path(p).read_bytes() for p in self.trusted_certs]
        server = Server(user_manager=StoreUsers(self.users, self.allow_anonymous, trusted))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("inspector machine vision")
        await server.set_application_uri(APPLICATION_URI)  # a server certificate must name this URI
        tokens: list[type] = [ua.UserNameIdentityToken]
        if self.certificate and self.private_key:
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            tokens.append(ua.X509IdentityToken)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        idx = await server.register_namespace(NAMESPACE)
        await self._build(server, idx)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        async with server:
            self._started.set()
            await self._show(self.handshake.snapshot())
            publisher = asyncio.create_task(self._publish())
            await self._stopping.wait()
            publisher.cancel()

    # -- address space ---------------------------------------------------------------------------
    async def _build(self, server: Server, idx: int) -> None:
        vs = await server.nodes.objects.add_object(idx, "VisionSystem")
        hs = await vs.add_folder(idx, "Handshake")
        recipe = await vs.add_folder(idx, "RecipeManagement")
        results = await (await vs.add_folder(idx, "ResultManagement")).add_folder(idx, "Results")
        counters = await vs.add_folder(idx, "Counters")
        V = ua.VariantType
        layout = {
            vs: [("SystemState", "Stopped", V.String)],
            hs: [("Trigger", False, V.Boolean), ("PartSerial", "", V.String), ("Image", b"", V.ByteString),
                 ("Ready", False, V.Boolean), ("Busy", False, V.Boolean), ("ResultValid", False, V.Boolean),
                 ("Fault", False, V.Boolean), ("ErrorCode", 0, V.Int32), ("Error", "", V.String)],
            recipe: [("ProductId", "", V.String), ("ManualVersion", "", V.String), ("ModelVersion", "", V.String)],
            results: [("InspectionId", "", V.String), ("Verdict", "", V.String), ("ResultCode", 0, V.Int32),
                      ("DefectType", "", V.String), ("Confidence", 0.0, V.Double), ("Timestamp", None, V.DateTime),
                      ("ImageId", "", V.String), ("PartSerial", "", V.String), ("Late", False, V.Boolean),
                      ("LatencyMs", 0.0, V.Double), ("TriggerCount", 0, V.UInt32)],
            counters: [("Triggers", 0, V.UInt32), ("Results", 0, V.UInt32), ("Timeouts", 0, V.UInt32),
                       ("Refused", 0, V.UInt32)],
        }  # fmt: skip
        for parent, variables in layout.items():
            for name, value, vtype in variables:
                key = f"Result.{name}" if parent is results else name
                self.nodes[key] = await parent.add_variable(idx, name, ua.Variant(value, vtype))
        for name in ("Trigger", "PartSerial", "Image"):  # the PLC's side of the handshake
            await self.nodes[name].set_writable()
        S, I32, D = ua.VariantType.String, ua.VariantType.Int32, ua.VariantType.Double

        def arg(name: str, vtype: ua.VariantType) -> ua.Argument:
            a = ua.Argument()
            a.Name, a.DataType, a.ValueRank = name, ua.NodeId(vtype.value), -1
            return a

        await vs.add_method(idx, "Start", uamethod(lambda _p: self.handshake.start()), [], [])
        await vs.add_method(idx, "Stop", uamethod(lambda _p: self.handshake.stop()), [], [])
        await vs.add_method(idx, "Reset", uamethod(lambda _p: self.handshake.reset()), [], [])
        await recipe.add_method(idx, "ActivateRecipe", uamethod(self._activate), [arg("ProductId", S)],
                                [arg("ErrorCode", I32)])  # fmt: skip
        await vs.add_method(idx, "StartSingleJob", self._single_job, [arg("PartSerial", S),
                            arg("Image", ua.VariantType.ByteString)],
                            [arg("ResultCode", I32), arg("Verdict", S), arg("InspectionId", S),
                             arg("Confidence", D)])  # fmt: skip

    def _activate(self, _parent, product: str) -> ua.Variant:
        try:
            self.handshake.select_product(product)
        except TriggerRefused as exc:
            return ua.Variant(exc.code, ua.VariantType.Int32)
        return ua.Variant(0, ua.VariantType.Int32)

    async def _single_job(self, _parent, serial: ua.Variant, image: ua.Variant) -> list[ua.Variant]:
        loop = asyncio.get_running_loop()
        try:
            r = await loop.run_in_executor(
                None, lambda: self.handshake.trigger(image.Value or None, serial.Value or "", acknowledge=True)
            )
            out = (r.result_code, r.verdict, r.inspection_id, r.confidence)
        except TriggerRefused as exc:
            out = (exc.code, "", "", 0.0)
        types = (ua.VariantType.Int32, ua.VariantType.String, ua.VariantType.String, ua.VariantType.Double)
        return [ua.Variant(v, t) for v, t in zip(out, types, strict=True)]

    # -- the PLC writes ----------------------------------------------------------------------------
    async def _on_write(self, event, _dispatcher) -> None:
        if not event.is_external:
            return
        trigger_id = self.nodes["Trigger"].nodeid
        for wv, status in zip(event.request_params.NodesToWrite, event.response_params, strict=False):
            if wv.NodeId != trigger_id or not status.is_good():
                continue
            level = bool(wv.Value.Value.Value)
            rising, self._trigger_level = level and not self._trigger_level, level
            if rising:
                image = await self.nodes["Image"].read_value()
                serial = await self.nodes["PartSerial"].read_value()
                asyncio.get_running_loop().run_in_executor(None, self._trigger, image or None, serial or "")
            elif not level:
                self.handshake.acknowledge()

    def _trigger(self, image: bytes | None, serial: str) -> None:
        try:
            self.handshake.trigger(image, serial)
        except TriggerRefused as exc:  # the handshake published the code; the server keeps serving
            log.info("OPC UA trigger refused: %s", exc)

    # -- the station's state onto the nodes ---------------------------------------------------------
    def _on_state(self, state: HandshakeState) -> None:
        if self.loop is not None and self._updates is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._updates.put_nowait, state)

    async def _publish(self) -> None:
        while True:
            state = await self._updates.get()
            while not self._updates.empty():  # only the newest state matters
                state = self._updates.get_nowait()
            try:
                await self._show(state)
            except Exception:  # a node write must not end the publisher
                log.exception("could not publish the handshake state")

    async def _show(self, s: HandshakeState) -> None:
        V = ua.VariantType

        async def put(key: str, value, vtype: ua.VariantType) -> None:
            await self.nodes[key].write_value(ua.Variant(value, vtype))

        manual, model = self.recipe(s.product) if s.product else ("", "")
        await put("ProductId", s.product, V.String)
        await put("ManualVersion", manual, V.String)
        await put("ModelVersion", model, V.String)
        if (r := s.result) is not None:  # the result first: ResultValid must never show an old one
            await put("Result.InspectionId", r.inspection_id, V.String)
            await put("Result.Verdict", r.verdict, V.String)
            await put("Result.ResultCode", r.result_code, V.Int32)
            await put("Result.DefectType", r.defect_type or "", V.String)
            await put("Result.Confidence", float(r.confidence), V.Double)
            await put("Result.Timestamp", r.timestamp, V.DateTime)
            await put("Result.ImageId", r.inspection_id, V.String)
            await put("Result.PartSerial", r.part_serial, V.String)
            await put("Result.Late", r.late, V.Boolean)
            await put("Result.LatencyMs", float(r.latency_ms), V.Double)
            await put("Result.TriggerCount", r.trigger, V.UInt32)
        c = s.counters
        for key, value in (("Triggers", c.triggers), ("Results", c.results), ("Timeouts", c.timeouts),
                           ("Refused", c.refused)):  # fmt: skip
            await put(key, value, V.UInt32)
        await put("ErrorCode", s.error_code, V.Int32)
        await put("Error", s.error, V.String)
        await put("Fault", s.state == "fault", V.Boolean)
        await put("Busy", s.state == "busy", V.Boolean)
        await put("ResultValid", s.result_valid, V.Boolean)
        await put("Ready", s.ready, V.Boolean)
        await put("SystemState", s.system_state, V.String)
