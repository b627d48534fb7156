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

from inspector.errors import UnknownProductError
from inspector.service.spool import Job
from inspector.service.worker import InspectionWorker, QueueFullError

log = logging.getLogger(__name__)
FIELDS = ("product", "line", "station", "camera", "part_serial")


class _Denied(Exception):  # args: (HTTP status, message) of a refused API key
    pass


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def create_app(
    worker: InspectionWorker,
    ready: Callable[[], tuple[bool, str]],
    max_body_bytes: int = 50 << 20,
    answer_timeout_s: float = 60.0,
    authorize: Callable[[str | None, str], tuple[int, str] | None] | None = None,
) -> FastAPI:
    app = FastAPI(title="inspector", summary="Visual inspection station", version="1")

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

    def admit(key: str | None, job: Job, data: bytes):
        if authorize is not None and (denied := authorize(key, job.line)):
            raise _Denied(*denied)
        return worker.submit(job, data)

    @app.post("/v1/inspect", responses={413: {}, 415: {}, 422: {}, 404: {}, 503: {}, 504: {}})
    async def inspect(request: Request) -> JSONResponse:
        """Body: the image bytes (Content-Type image/* or application/octet-stream, fields as query
        parameters) or multipart/form-data with an ``image`` file and the fields as form values.
        Fields: product (required), line, station, camera, part_serial."""
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body_bytes:
            return _error(413, f"body of {int(length)} bytes is over the {max_body_bytes}-byte limit")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields = {k: request.query_params.get(k) for k in FIELDS}
        if ctype == "multipart/form-data":
            form = await request.form()
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                return _error(422, "multipart body needs a file field named 'image'")
            data = await upload.read()
            fields.update({k: form.get(k) for k in FIELDS if isinstance(form.get(k), str)})
        elif ctype.startswith("image/") or ctype == "application/octet-stream":
            data = await request.body()
        else:
            return _error(415, f"Content-Type '{ctype or 'none'}' is not an image; send image/* or multipart")
        if len(data) > max_body_bytes:
            return _error(413, f"body of {len(data)} bytes is over the {max_body_bytes}-byte limit")
        if not fields.get("product"):
            return _error(422, "missing field 'product'")
        if not data:
            return _error(422, "empty image")
        job = Job(
            id=str(uuid.uuid4()),
            product=fields["product"],
            source=f"http:{fields['product']}",
            line=fields.get("line") or "",
            station=fields.get("station") or "",
            camera=fields.get("camera") or "",
            part_serial=fields.get("part_serial"),
        )
        try:  # the key check and the spool's fsync must not hold up the event loop
            future = await run_in_threadpool(admit, request.headers.get("x-api-key"), job, data)
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

    return app
