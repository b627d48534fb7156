"""Line benchmark: the station as a PLC meets it, on loopback. Prints JSON.

Starts ``inspector serve`` with the OPC UA server (a subprocess: the station and the simulated
PLC do not share an interpreter), then drives it with ``inspector simulate-line``'s engine:

1. the target: 20 parts/s (1,200 parts/min) for ``--minutes`` at the default 100 ms inspect
   window: trigger -> ResultValid p99, fail-safe timeouts, lost triggers;
2. the saturation sweep: rising rates for ``--sweep-seconds`` each with a window wide enough
   that nothing times out; the saturation point is the highest rate the station kept (at least
   95 % of the rate wanted, nothing lost).

    python bench/line.py --model var/models/current --images var/demo/solar-cell-mono

Goals (issue #16): at 20 parts/s, p99 <= 50 ms and zero lost triggers over 10 minutes. Bounded in
parts and time; loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from inspector.simulate import simulate_line  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_station(
    home: Path, model: Path, product: str, window_ms: float, threads: int | None = None
) -> tuple[subprocess.Popen, str, str, int]:
    """A station with a fresh store and one PLC user -> (process, OPC UA endpoint, password, HTTP port)."""
    from inspector.services import create_user
    from inspector.settings import Settings
    from inspector.store.migrate import upgrade
    from inspector.store.session import make_engine, session_factory

    url = Settings(home=home).database_url
    upgrade(url)
    engine = make_engine(url)
    password = secrets.token_urlsafe(12)
    with session_factory(engine)() as s:
        create_user(s, "plc-bench", password, "operator")
        s.commit()
    engine.dispose()
    endpoint, http = f"opc.tcp://127.0.0.1:{free_port()}/inspector", free_port()
    cmd = [sys.executable, "-m", "inspector", "serve", "--home", str(home), "--model", str(model), "--port", str(http),
           "--opcua", endpoint, "--product", product, "--inspect-window-ms", str(window_ms)]  # fmt: skip
    if threads:
        cmd += ["--model-threads", str(threads)]
    log = open(home / "station.log", "wb")  # the station writes it while it runs
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{http}/v1/ready", timeout=2).status_code == 200:
                time.sleep(2)  # the OPC UA server starts beside the HTTP one
                return proc, endpoint, password, http
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the station did not start; see {home / 'station.log'}")


def run(
    model: Path,
    images: Path,
    product: str,
    window_ms: float,
    rate: float,
    seconds: float,
    cycle_ms: float,
    threads: int | None = None,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="line-bench-") as tmp:
        proc, endpoint, password, http = start_station(Path(tmp), model, product, window_ms, threads)
        try:
            r = simulate_line(endpoint, images, rate, int(rate * seconds) + 1, seconds, "plc-bench", password, product,
                              cycle_ms=cycle_ms)  # fmt: skip
            stages = stage_ms(http)
        finally:
            proc.terminate()
            proc.wait(60)
    return {"window_ms": window_ms, "plc_cycle_ms": cycle_ms, "infer_ms_per_batch": stages.get("infer"),
            "stage_ms": stages, **r.to_dict()}  # fmt: skip


def stage_ms(http: int) -> dict[str, float]:
    """Each station stage's mean time (decode per image; infer and store per batch), from its
    /metrics: where a part's trigger-to-result time goes, apart from the handshake's own share."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in httpx.get(f"http://127.0.0.1:{http}/metrics", timeout=10).text.splitlines():
        for prefix, into in (("inspector_stage_seconds_sum", sums), ("inspector_stage_seconds_count", counts)):
            if line.startswith(prefix + '{stage="'):
                into[line.split('"')[1]] = float(line.split()[-1])
    return {k: round(1000 * sums[k] / counts[k], 1) for k in sums if counts.get(k)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "current")
    ap.add_argument("--images", type=Path, default=ROOT / "var" / "demo" / "solar-cell-mono")
    ap.add_argument("--product", default="solar-cell-mono")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window-ms", type=float, default=100.0)
    ap.add_argument("--cycle-ms", type=float, default=5.0, help="the PLC's scan cycle: how often it reads the nodes")
    ap.add_argument("--sweep", type=float, nargs="*", default=[1, 2, 4, 8, 16])
    ap.add_argument("--sweep-seconds", type=float, default=30.0)
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "line_bench.json")
    ap.add_argument("--model-threads", type=int, help="the station's model threads (default: its own choice)")
    args = ap.parse_args()
    if not (args.model / "card.json").is_file():
        sys.exit(f"no model at {args.model}: run `inspector demo` first (or pass --model)")
    out: dict = {
        "command": "python bench/line.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": str(args.model),
        "product": args.product,
        "model_threads": args.model_threads or "the station's default",
    }
    out["target"] = run(
        args.model,
        args.images,
        args.product,
        args.window_ms,
        args.rate,
        60 * args.minutes,
        args.cycle_ms,
        args.model_threads,
    )
    t = out["target"]
    out["target"]["goal_met"] = bool(
        t["latency_ms"] and t["latency_ms"]["p99"] <= 50 and t["lost"] == 0 and not t["refused"] and not t["timeouts"]
    )
    sweep = []
    for rate in args.sweep:
        r = run(
            args.model, args.images, args.product, 60_000, rate, args.sweep_seconds, args.cycle_ms, args.model_threads
        )
        sweep.append(r)
        if r["rate_achieved"] < 0.95 * rate or r["lost"]:
            break
    out["sweep"] = sweep
    kept = [r["rate_wanted"] for r in sweep if r["rate_achieved"] >= 0.95 * r["rate_wanted"] and not r["lost"]]
    out["saturation_parts_per_s"] = max(kept) if kept else None
    out["saturation_achieved_parts_per_s"] = max((r["rate_achieved"] for r in sweep), default=None)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
