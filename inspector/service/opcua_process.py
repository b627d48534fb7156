"""The OPC UA line adapter: the server runs in a process of its own, the handshake stays here.

asyncua is pure Python; in the station's process every PLC or SCADA read took the GIL from the
model (on the 2-core CPU a PLC polling every 0.5 ms stretched the model's time per part to 181 ms,
against 132 ms with the server in its own process; docs/service.md). So the server process holds
only the address space, and one pipe joins it to the station:

- station -> server: each handshake state with its recipe (manual and model version), the
  answers to calls, and ``stop``;
- server -> station: calls that need an answer (``trigger``, ``select_product``, ``sign_in``),
  each with a number its answer carries, and casts that need none (``start``, ``stop``,
  ``reset``, ``acknowledge``), which are applied in the order they came, so a PLC's acknowledge
  always lands before its next trigger.

The handshake is the station's, so a server process that dies loses nothing: the station starts
a new one with the current state. A station that dies closes the pipe, and the server process
ends with it (no orphan keeps the port or tells a PLC it is Ready).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from inspector.service.line_state import ERROR, HandshakeState, LineResult, TriggerRefused

if TYPE_CHECKING:
    from inspector.service.adapters import Station
    from inspector.service.handshake import Handshake
    from inspector.settings import OpcUaSettings

log = logging.getLogger(__name__)
Recipe = tuple[str, str]  # manual version, model version
CASTS = ("start", "stop", "reset", "acknowledge")
START_TIMEOUT_S = 60.0  # a cold start imports asyncua and cryptography


class OpcUaProcess:
    """Starts, watches and stops the server process; answers its calls with the handshake."""

    name = "opcua"

    def __init__(
        self,
        handshake: Handshake,
        config: OpcUaSettings,
        users: Callable[[str, str], bool],
        recipe: Callable[[str], Recipe],
    ) -> None:
        self.handshake, self.config, self.users, self.recipe = handshake, config, users, recipe
        self.endpoint = config.endpoint
        self.process: BaseProcess | None = None
        self.restarts = 0
        self._conn: Connection | None = None
        self._early: list[tuple] = []  # calls that came before the server said it had started
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._calls = ThreadPoolExecutor(4, thread_name_prefix="opcua-calls")
        self._stopping = threading.Event()
        self._sender = threading.Thread(target=self._send_loop, name="opcua-send", daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop, name="opcua-receive", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn()  # a server that cannot start (port taken, bad certificate) fails the station's start
        self.handshake.listeners.append(self._on_state)
        self._sender.start()
        self._receiver.start()
        self.handshake.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._on_state in self.handshake.listeners:
            self.handshake.listeners.remove(self._on_state)
        self._outbox.put(("stop",))
        self._outbox.put(None)
        self._sender.join(10)
        if self.process is not None:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._receiver.join(10)
        self._calls.shutdown(wait=False, cancel_futures=True)

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that holds torch's threads
        ours, theirs = ctx.Pipe()
        state = self.handshake.snapshot()
        level = logging.getLogger().getEffectiveLevel()
        proc = ctx.Process(
            target=serve, args=(theirs, self.config, state, self._recipe(state), level), name="inspector-opcua"
        )
        proc.daemon = True
        proc.start()
        theirs.close()  # only the child holds its end: its death reads as EOF here
        try:
            while True:
                if not ours.poll(START_TIMEOUT_S):
                    raise RuntimeError(f"the OPC UA server process did not start within {START_TIMEOUT_S:.0f} s")
                message = ours.recv()
                if message[0] in ("started", "failed"):
                    break
                self._early.append(message)  # a PLC was quicker than the server's own word
            kind, detail = message
        except (EOFError, OSError, RuntimeError) as exc:
            proc.kill()
            proc.join(5)
            why = f"exit code {proc.exitcode}" if isinstance(exc, EOFError | OSError) else str(exc)
            raise RuntimeError(f"the OPC UA server could not start: {why}") from None
        if kind != "started":
            proc.join(5)
            raise RuntimeError(detail)  # the server's own words: "the OPC UA server could not start: ..."
        self.process, self._conn = proc, ours
        log.info("OPC UA server on %s (process %d)", self.endpoint, proc.pid)

    def _respawn(self) -> None:
        """A new server process after the last one died, backing off while it keeps failing."""
        for attempt in itertools.count():
            if self._stopping.wait(min(30.0, 0.5 * 2**attempt)):
                return
            try:
                self._spawn()
            except RuntimeError as exc:
                log.error("%s; trying again", exc)
                continue
            self.restarts += 1
            return

    # -- station -> server ---------------------------------------------------------------------------
    def _recipe(self, state: HandshakeState) -> Recipe:
        try:
            return self.recipe(state.product) if state.product else ("", "")
        except Exception:  # a recipe we cannot read must not stop the state from reaching the PLC
            log.exception("could not read the recipe of '%s'", state.product)
            return ("", "")

    def _on_state(self, state: HandshakeState) -> None:
        self._outbox.put(("state", state))  # never blocks the handshake: its recipe is read on sending

    def _send_loop(self) -> None:
        while True:
            batch = [self._outbox.get()]
            while not self._outbox.empty():
                batch.append(self._outbox.get())
            last_state = max((i for i, m in enumerate(batch) if m and m[0] == "state"), default=-1)
            for i, message in enumerate(batch):
                if message is None:
                    return
                if message[0] == "state":
                    if i != last_state:
                        continue  # only the newest state matters
                    # its recipe is read here, off the trigger path: the recipe as it is now
                    message = ("state", message[1], self._recipe(message[1]))
                try:
                    self._conn.send(message)
                except (OSError, ValueError):  # the process is gone: its successor starts from the state
                    pass

    # -- server -> station ---------------------------------------------------------------------------
    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                message = self._early.pop(0) if self._early else self._conn.recv()
            except (EOFError, OSError):
                if self._stopping.is_set():
                    return
                code = self.process.exitcode if self.process is not None else None
                log.error("the OPC UA server process ended (exit code %s): starting a new one", code)
                self._respawn()
                continue
            if message[0] == "cast" and message[1] in CASTS:
                getattr(self.handshake, message[1])()  # in order, here: quick and never blocking
            elif message[0] == "call":
                self._calls.submit(self._answer, *message[1:])

    def _answer(self, number: int, op: str, args: tuple) -> None:
        calls: dict[str, Callable] = {
            "trigger": self.handshake.trigger,
            "select_product": self.handshake.select_product,
            "sign_in": self.users,
        }
        try:
            answer = ("answer", number, True, calls[op](*args))
        except TriggerRefused as exc:
            answer = ("answer", number, False, (exc.code, str(exc)))
        except Exception as exc:  # said to the PLC as an error; the station keeps serving
            log.exception("OPC UA call %s failed", op)
            answer = ("answer", number, False, (ERROR, f"{op} failed: {exc}"))
        self._outbox.put(answer)


class RemoteHandshake:
    """The handshake as the server process sees it: the station's states, and calls over the pipe."""

    def __init__(self, conn: Connection, state: HandshakeState, recipe: Recipe) -> None:
        self.conn, self.state, self.recipes = conn, state, {state.product: recipe}
        self.listeners: list[Callable[[HandshakeState], None]] = []
        self.closed = threading.Event()
        self._send_lock, self._pending_lock = threading.Lock(), threading.Lock()
        self._pending: dict[int, Future] = {}
        self._numbers = itertools.count()
        self._reader = threading.Thread(target=self._read, name="station-pipe", daemon=True)
        self._reader.start()

    def send(self, message: tuple) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "stop":
                    break
                if message[0] == "answer":
                    with self._pending_lock:
                        future = self._pending.pop(message[1], None)
                    if future is not None:
                        future.set_result(message[2:])
                elif message[0] == "state":
                    self.state, self.recipes[message[1].product] = message[1], message[2]
                    for listener in self.listeners:
                        try:
                            listener(message[1])
                        except Exception:  # one bad update must not cut the server off from the station
                            log.exception("could not show the station's state")
        except (EOFError, OSError):
            pass  # the station is gone
        finally:
            self.closed.set()
            with self._pending_lock:
                for future in self._pending.values():
                    future.set_result((False, (ERROR, "the station is gone")))
                self._pending.clear()

    def _call(self, op: str, *args):
        future: Future = Future()
        with self._pending_lock:
            if self.closed.is_set():
                raise TriggerRefused(ERROR, "the station is gone")
            number = next(self._numbers)
            self._pending[number] = future
        self.send(("call", number, op, args))
        ok, value = future.result()
        if not ok:
            raise TriggerRefused(*value)
        return value

    def _cast(self, op: str) -> None:
        try:
            self.send(("cast", op))
        except OSError:
            log.warning("the station is gone: %s not delivered", op)

    def start(self) -> None:
        self._cast("start")

    def stop(self) -> None:
        self._cast("stop")

    def reset(self) -> None:
        self._cast("reset")

    def acknowledge(self) -> None:
        self._cast("acknowledge")

    def select_product(self, product: str) -> None:
        self._call("select_product", product)

    def trigger(
        self, image: bytes | None = None, part_serial: str = "", product: str = "", acknowledge: bool = False
    ) -> LineResult:
        return self._call("trigger", image, part_serial, product, acknowledge)

    def snapshot(self) -> HandshakeState:
        return self.state

    def sign_in(self, user: str, password: str) -> bool:
        try:
            return bool(self._call("sign_in", user, password))
        except TriggerRefused:
            return False

    def recipe(self, product: str) -> Recipe:
        return self.recipes.get(product, ("", ""))


def serve(conn: Connection, config: OpcUaSettings, state: HandshakeState, recipe: Recipe, level: int) -> None:
    """The server process: serves until the station says stop or goes away."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s opcua[%(process)d] %(message)s")
    from inspector.service.opcua import OpcUaServer

    remote = RemoteHandshake(conn, state, recipe)
    server = OpcUaServer(remote, config.endpoint, remote.sign_in, config.allow_anonymous, config.certificate,
                         config.private_key, config.trusted_certs, remote.recipe)  # fmt: skip
    try:
        server.start()
    except RuntimeError as exc:  # start() says why: port taken, certificate unreadable...
        remote.send(("failed", str(exc)))
        return
    remote.send(("started", os.getpid()))
    remote.closed.wait()
    server.stop()


def from_settings(station: Station) -> OpcUaProcess | None:
    cfg = station.settings.service.opcua
    if cfg is None:
        return None
    from inspector.services import authenticate
    from inspector.store.session import session_factory

    sessions = session_factory(station.db_engine)

    def users(name: str, password: str) -> bool:
        with sessions() as s:
            return authenticate(s, name, password) is not None

    def recipe(product: str) -> Recipe:
        engine = station.worker.engine
        manual = engine.manual(product)
        return (str(manual.version) if manual is not None else "", engine.version)

    return OpcUaProcess(station.handshake, cfg, users, recipe)
