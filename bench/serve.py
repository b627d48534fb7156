"""Service benchmark: raw model throughput vs the in-process engine (queue, decode, batching,
storing) vs HTTP from a second process, at saturation and at half of it. Prints JSON.

Also the host ceiling: the in-process engine with the image backbone swapped for one that
returns a constant, so everything else runs for real (spool, decode, resize, drift signals,
fusion head, image files, database rows, answers). It is what the station can do when the
model costs nothing, e.g. on a GPU, and where the time then goes (per-stage sums); measured
in-process and through HTTP (uvicorn in this process, load from ``--clients`` processes).

    python bench/serve.py --model var/models/current --images var/demo/solar-cell-mono/images

Goals (issue #6): engine throughput >= 80 % of raw forward throughput; p99 at half of
saturation <= 2x p50. Load goes to 127.0.0.1 only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import torch

from inspector.engine import Engine
from inspector.images import load_image
from inspector.runtime import keep_freed_memory
from inspector.service.app import build_service
from inspector.service.spool import Job
from inspector.settings import Settings


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


def raw_forward(engine: Engine, arrays, batch: int, seconds: float) -> float:
    """Images/s of every part on prepared views (no decode, no queue, no store): the ceiling."""
    product = next(iter(engine.card.products))
    manual = engine.manual(product)
    prepared = [engine.prepare(a, product) for a in arrays[:batch]]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine.part_outputs(product, prepared, manual)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        n += batch
    return n / (time.perf_counter() - start)


class FreeBackbone(torch.nn.Module):
    """Stands in for the classifier's image encoder: the first image's features for every image, at no cost."""

    def __init__(self, encoder) -> None:
        super().__init__()
        self.input_size, self.mean, self.std = encoder.input_size, encoder.mean, encoder.std
        with torch.inference_mode():
            size = encoder.input_size
            self.tokens, self.pooled = encoder(torch.zeros(1, 3, size, size, device=next(encoder.parameters()).device))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokens.expand(len(x), -1, -1), self.pooled.expand(len(x), -1)


class FreeExtractor(torch.nn.Module):
    """Stands in for a patch extractor: one computed feature map per input shape, then reused."""

    def __init__(self, extractor) -> None:
        super().__init__()
        self.inner = extractor
        self.mean, self.std, self.multiple, self.dim = extractor.mean, extractor.std, extractor.multiple, extractor.dim
        self.cache: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape[1:])
        if key not in self.cache:
            self.cache[key] = self.inner(x[:1])
        return self.cache[key].expand(len(x), -1, -1, -1)


def free_parts(engine: Engine) -> None:
    """Swap every backbone for a constant: what is left is the station's own work."""
    if "classifier" in engine.parts:
        engine.parts["classifier"].encoder = FreeBackbone(engine.parts["classifier"].encoder)
    if "anomaly" in engine.parts:
        part = engine.parts["anomaly"]
        part.extractors = {k: FreeExtractor(v) for k, v in part.extractors.items()}


def stage_seconds(worker) -> dict:
    """Per-stage time from the service's own Prometheus histograms."""
    out = {}
    for metric in worker.metrics.stage.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_sum", "_count")):
                out.setdefault(sample.labels["stage"], {})[sample.name.rsplit("_", 1)[1]] = sample.value
    return {k: {"calls": int(v["count"]), "seconds": round(v["sum"], 2)} for k, v in out.items()}


def in_process(
    settings: Settings, model: Path, product: str, blobs: list[bytes], count: int, batch: int, free: bool = False
) -> dict:
    service = build_service(settings, model, max_batch=batch, max_wait_ms=5, queue_size=count + 1)
    worker = service.worker
    if free:
        free_parts(worker.engine)
    worker.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:  # accepting fsyncs each image: callers do it side by side, as HTTP does
        jobs = [Job(id=str(uuid.uuid4()), product=product) for _ in range(count)]
        futures = list(pool.map(lambda i: worker.submit(jobs[i], blobs[i % len(blobs)]), range(count)))
    lat = [f.result(600).latency_ms for f in futures]
    elapsed = time.perf_counter() - start
    worker.stop()
    return {
        "images": count,
        "images_per_s": round(count / elapsed, 1),
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "stage_seconds": stage_seconds(worker),
    }


def http_host_ceiling(
    settings: Settings, model: Path, product: str, blobs: list[bytes], count: int, batch: int, clients: int
) -> dict:
    """The host ceiling through HTTP: the station (constant backbone) served by uvicorn in this
    process, loaded from ``clients`` other processes. What one station process can answer."""
    import uvicorn

    from inspector.service.app import asgi_app

    service = build_service(settings, model, max_batch=batch, max_wait_ms=5, queue_size=4 * batch)
    free_parts(service.worker.engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        result = http_load(port, product, blobs, count, None, max(1, 2 * batch // clients), clients)
    finally:
        server.should_exit = True
        thread.join(60)
    return {**result, "stage_seconds": stage_seconds(service.worker)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(port: int, product: str, blobs: list[bytes], ids: range, rate: float | None, threads: int, t0: float):
    """One load process: posts images ``ids`` (open loop: image i due at t0 + i / rate)."""
    lat, errors = [], {}
    lock = threading.Lock()
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=threads))

    def one(i: int) -> None:
        if rate:
            time.sleep(max(0.0, t0 + i / rate - time.time()))
        start = time.perf_counter()
        try:
            r = client.post(
                f"http://127.0.0.1:{port}/v1/inspect?product={product}",
                content=blobs[i % len(blobs)],
                headers={"Content-Type": "image/png"},
            )
            outcome = r.status_code
        except httpx.HTTPError as exc:  # counted and named, not fatal: a load generator reports
            outcome = type(exc).__name__
        with lock:
            if outcome == 200:
                lat.append((time.perf_counter() - start) * 1000)
            else:
                errors[str(outcome)] = errors.get(str(outcome), 0) + 1

    time.sleep(max(0.0, t0 - time.time()))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, ids))
    client.close()
    return lat, errors, time.time()


def http_load(
    port: int, product: str, blobs: list[bytes], count: int, rate: float | None, threads: int, clients: int
) -> dict:
    """Closed loop (rate None: as fast as the clients go) or open loop at ``rate``/s, from
    ``clients`` processes of ``threads`` threads each (one Python client tops out near 1,000/s)."""
    t0 = time.time() + 2  # every process starts at once
    with ProcessPoolExecutor(clients) as pool:
        parts = [
            pool.submit(_client, port, product, blobs, range(c, count, clients), rate, threads, t0)
            for c in range(clients)
        ]
        results = [p.result() for p in parts]
    lat = [x for r in results for x in r[0]]
    errors: dict[str, int] = {}
    for r in results:
        for kind, n in r[1].items():
            errors[kind] = errors.get(kind, 0) + n
    elapsed = max(r[2] for r in results) - t0
    return {
        "requests": count,
        "ok": len(lat),
        "errors": errors,  # by status code or exception
        "images_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "target_rate": rate,
        "clients": f"{clients} processes x {threads} threads",
    }


def main() -> None:
    keep_freed_memory()  # as the inspector's commands do: the station's speed, not the allocator's
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("var/models/current"))
    ap.add_argument("--images", type=Path, default=Path("var/demo/solar-cell-mono/images"))
    ap.add_argument("--product", default="solar-cell-mono")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cache", type=Path, default=Path("var/cache"), help="reuse this cache's manual embeddings")
    ap.add_argument("--clients", type=int, default=1, help="load-generating processes for HTTP")
    ap.add_argument("--host-count", type=int, default=2000, help="images for the host ceiling (0: skip it)")
    ap.add_argument("--host-batch", type=int, default=64)
    args = ap.parse_args()
    if not (args.model / "card.json").exists():
        sys.exit(f"no model at {args.model}: run `inspector demo` first")
    files = sorted(args.images.rglob("*.png"))[:64]
    blobs = [f.read_bytes() for f in files]
    tmp = Path(tempfile.mkdtemp(prefix="inspector-bench-"))

    def home(path: Path) -> Path:
        """A fresh station home with the manuals' embeddings already cached (no text model to load)."""
        if (args.cache / "text").is_dir():
            shutil.copytree(args.cache / "text", path / "cache" / "text")
        return path

    settings = Settings(home=home(tmp / "engine"))
    settings.model.device = args.device
    engine = Engine(args.model, args.device, cache_dir=settings.cache_dir)
    out = {
        "device": str(engine.device),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "batch": args.batch,
        "raw_forward_images_per_s": round(raw_forward(engine, [load_image(b) for b in blobs], args.batch, 10), 1),
    }
    out["engine"] = in_process(settings, args.model, args.product, blobs, args.count, args.batch)
    out["engine_vs_raw"] = round(out["engine"]["images_per_s"] / out["raw_forward_images_per_s"], 3)
    if args.host_count:
        host = Settings(home=home(tmp / "host"))
        host.model.device = args.device
        out["host_ceiling_batch"] = args.host_batch
        out["host_ceiling"] = in_process(host, args.model, args.product, blobs, args.host_count, args.host_batch, True)
        http_host = Settings(home=home(tmp / "http-host"))
        http_host.model.device = args.device
        out["http_host_ceiling"] = http_host_ceiling(
            http_host, args.model, args.product, blobs, args.host_count, args.host_batch, args.clients
        )
    port = free_port()
    env = {**os.environ, "INSPECTOR_HOME": str(home(tmp / "http"))}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inspector",
            "serve",
            "--model",
            str(args.model),
            "--port",
            str(port),
            "--max-batch",
            str(args.batch),
            "--device",
            args.device,
            "--queue-size",
            "1024",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        threads = max(1, 2 * args.batch // args.clients)  # two batches in flight at saturation
        sat = http_load(port, args.product, blobs, args.count, None, threads, args.clients)
        rate = sat["images_per_s"] / 2
        half = http_load(port, args.product, blobs, args.count // 2, rate, threads, args.clients)
        out["http_saturation"], out["http_half_rate"] = sat, half
        out["p99_over_p50_at_half_rate"] = round(half["p99_ms"] / max(half["p50_ms"], 1e-9), 2)
    finally:
        proc.terminate()
        proc.wait(60)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
