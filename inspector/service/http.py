"""HTTP input: POST an image, get the stored verdict back (FastAPI, served by uvicorn)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from inspector.errors import UnknownProductError
from inspector.service.fields import field_problem
from inspector.service.handshake import Handshake
from inspector.service.line_state import NO_IMAGE, STOPPED, UNKNOWN_PRODUCT, TriggerRefused
from inspector.service.spool import Job
from inspector.service.worker import InspectionWorker, QueueFullError

log = logging.getLogger(__name__)
FIELDS = ("product", "line", "station", "camera", "part_serial", "request_id")
# a client's request_id names one part on one line: the same id again is the same inspection
REQUEST_IDS = uuid.UUID("6f1d3c52-93a4-4c1e-9a53-3b0c2f0e7d11")


class _Denied(Exception):  # args: (HTTP status, message) of a refused API key
    pass


class _TooLarge(Exception):  # args: (bytes read so far,)
    pass


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _limited(request: Request, limit: int):
    """The body as it arrives, stopped once it passes ``limit``: a chunked upload declares no
    size, so the limit is held while reading, not after."""
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise _TooLarge(n)
        yield chunk


def create_app(
    worker: InspectionWorker,
    ready: Callable[[], tuple[bool, str]],
    max_body_bytes: int = 50 << 20,
    answer_timeout_s: float = 60.0,
    authorize: Callable[[str | None, str | None, bool], tuple[int, str] | None] | None = None,
    line: str = "",
    station: str = "",
    open_paths: tuple[str, ...] = ("/v1/health", "/v1/ready", "/metrics"),
    handshake: Handshake | None = None,
) -> FastAPI:
    """``line``/``station``: what the station records when a request names none. ``open_paths``:
    answered without a key; the others (docs, schema) need one once keys exist, and
    ``/v1/inspect`` checks its own, with the line it reports for."""
    app = FastAPI(title="inspector", summary="Visual inspection station", version="1")

    async def _check_key(request: Request) -> JSONResponse | None:
        if authorize is not None and (
            denied := await run_in_threadpool(authorize, request.headers.get("x-api-key"), None, True)
        ):
            return _error(*denied)
        return None

    @app.middleware("http")
    async def key_gate(request: Request, call_next):
        path = request.url.path
        if authorize is not None and path not in open_paths and path not in ("/v1/inspect", "/v1/trigger"):
            if denied := await run_in_threadpool(authorize, request.headers.get("x-api-key"), None, True):
                return _error(*denied)
        return await call_next(request)

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/ready")
    def is_ready() -> JSONResponse:
        ok, detail = ready()
        return JSONResponse({"ready": ok, "detail": detail}, status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(worker.metrics.render(), media_type="text/plain; version=0.0.4")

    def admit(key: str | None, job: Job, data: bytes):  # the key's line scope, now the line is known
        if authorize is not None and (denied := authorize(key, job.line, False)):  # keys read at the door
            raise _Denied(*denied)
        return worker.submit(job, data)

    @app.post("/v1/inspect", responses={413: {}, 415: {}, 422: {}, 404: {}, 503: {}, 504: {}})
    async def inspect(request: Request) -> JSONResponse:
        """Body: the image bytes (Content-Type image/* or application/octet-stream, fields as query
        parameters) or multipart/form-data with an ``image`` file and the fields as form values.
        Fields: product (required), line, station, camera, part_serial, request_id (the client's
        own id for this part: a retry with the same id is answered with the first verdict and
        stored once)."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body_bytes:
            return _error(413, f"body of {int(length)} bytes is over the {max_body_bytes}-byte limit")
        key = request.headers.get("x-api-key")
        # the key first, so an unknown client cannot make the station read (and hold) a body at all;
        # the line a key may report for is checked once the fields are known
        if problem := await _check_key(request):
            return problem
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields = {k: request.query_params.get(k) for k in FIELDS}
        too_large = f"body over the {max_body_bytes}-byte limit"
        if ctype == "multipart/form-data":
            parser = MultiPartParser(request.headers, _limited(request, max_body_bytes), max_files=1, max_fields=10)
            try:
                form = await parser.parse()
            except _TooLarge:
                return _error(413, too_large)
            except MultiPartException as exc:
                return _error(422, f"bad multipart body: {exc.message}")
            try:
                upload = form.get("image")
                if upload is None or isinstance(upload, str):
                    return _error(422, "multipart body needs a file field named 'image'")
                data = await upload.read()
                fields.update({k: form.get(k) for k in FIELDS if isinstance(form.get(k), str)})
            finally:
                await form.close()
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            try:
                data = b"".join([c async for c in _limited(request, max_body_bytes)])
            except _TooLarge:
                return _error(413, too_large)
        else:
            return _error(415, f"Content-Type '{ctype or 'none'}' is not an image; send image/* or multipart")
        if not fields.get("product"):
            return _error(422, "missing field 'product'")
        if problem := field_problem(fields):
            return _error(422, problem)
        if not data:
            return _error(422, "empty image")
        job_line = fields.get("line") or line
        rid = fields.get("request_id")
        job = Job(
            id=str(uuid.uuid5(REQUEST_IDS, f"{job_line}\x1f{rid}") if rid else uuid.uuid4()),
            request_id=rid,
            product=fields["product"],
            source=f"http:{fields['product']}",
            line=job_line,
            station=fields.get("station") or station,
            camera=fields.get("camera") or "",
            part_serial=fields.get("part_serial"),
        )
        try:  # the key check and the spool's fsync must not hold up the event loop
            future = await run_in_threadpool(admit, key, job, data)
        except _Denied as exc:
            return _error(*exc.args)
        except UnknownProductError as exc:
            return _error(404, str(exc))
        except QueueFullError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        except Exception as exc:  # e.g. the keys never read and the database down: nothing was accepted
            log.exception("could not accept an image")
            error = f"not accepted: {type(exc).__name__}: {exc}"[:500]
            return JSONResponse({"error": error}, status_code=503, headers={"Retry-After": "5"})
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(future), answer_timeout_s)
        except TimeoutError:
            return _error(504, "accepted but not finished in time; it will be stored", inspection_id=job.id)
        except Exception as exc:  # noqa: BLE001 - the job stays spooled; the caller gets JSON, not a traceback
            return _error(500, f"inspection failed: {type(exc).__name__}: {exc}", inspection_id=job.id)
        body = asdict(outcome)
        return JSONResponse(body, status_code=422 if outcome.verdict == "error" else 200)

    if handshake is not None:

        @app.post("/v1/trigger", responses={404: {}, 409: {}, 413: {}, 422: {}, 503: {}})
        async def trigger(request: Request) -> JSONResponse:
            """The PLC cycle over HTTP: one part within the product's inspect window. Body: the image
            (or empty: the station's camera takes it); query: part_serial, product (default: the
            active recipe). Answer: the line result (``result_code`` 0 pass, 1..N the defect types,
            101 timeout...); a refused trigger answers its code (docs/service.md)."""
            if problem := await _check_key(request):
                return problem
            try:
                data = b"".join([c async for c in _limited(request, max_body_bytes)])
            except _TooLarge:
                return _error(413, f"body over the {max_body_bytes}-byte limit")
            fields = {k: request.query_params.get(k) for k in ("product", "part_serial")}
            if problem := field_problem(fields):
                return _error(422, problem)
            if authorize is not None and (denied := authorize(request.headers.get("x-api-key"), line, False)):
                return _error(*denied)
            try:
                result = await run_in_threadpool(
                    handshake.trigger, data or None, fields["part_serial"] or "", fields["product"] or "", True
                )
            except TriggerRefused as exc:
                status = {UNKNOWN_PRODUCT: 404, STOPPED: 503, NO_IMAGE: 422}.get(exc.code, 409)
                return _error(status, str(exc), code=exc.code)
            body = asdict(result) | {"timestamp": result.timestamp.isoformat()}
            return JSONResponse(body)

    return app
