"""Cost of a scheduled drift check: every stream of the champion, default settings (window 200,
baseline 2,000, MMD with 2,000 permutations), on SQLite. Prints JSON.

    python bench/drift_check.py --model var/models/current --lines 5

Each (product, line) stream gets baseline + window inspections whose signals are drawn from
the model's own drift reference (real embeddings of good parts, jittered), so every metric
runs on realistic numbers; the check itself is timed (median of 3), queries included.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.drift import run_drift_check
from inspector.reference import load_reference
from inspector.settings import DriftSettings
from inspector.store.migrate import upgrade
from inspector.store.repo import ensure_product, promote_model, record_inspections, record_signals, register_model
from inspector.store.session import make_engine, session_factory


def seed(sessions, reference, model_id: int, products: list[str], lines: int, per_stream: int, now: datetime) -> None:
    rng = np.random.default_rng(0)
    for product in products:
        emb, stats = reference.of(product)
        with sessions() as s:
            ensure_product(s, product)
            for line in (f"L{i + 1}" for i in range(lines)):
                pick = rng.integers(0, len(emb), per_stream)
                e = emb[pick] + rng.normal(0, 0.05, (per_stream, emb.shape[1])) * emb.std(0)
                st = stats[pick, :3] * rng.normal(1, 0.02, (per_stream, 3))
                defect = rng.random(per_stream) < 0.05
                rows, signals = [], []
                for i in range(per_stream):
                    uid = f"{product}-{line}-{i:06d}"
                    rows.append(
                        {
                            "uuid": uid,
                            "captured_at": now - timedelta(seconds=2 * (per_stream - i)),
                            "line": line,
                            "product_id": product,
                            "verdict": "reject" if defect[i] else "accept",
                            "defect_type": "crack" if defect[i] else None,
                            "confidence": float(rng.uniform(0.7, 1.0)),
                            "anomaly_score": float(rng.random()),
                            "model_version_id": model_id,
                        }
                    )
                    signals.append(
                        {
                            "inspection_uuid": uid,
                            "embedding": e[i].astype("<f2").tobytes(),
                            "brightness": float(st[i, 0]),
                            "contrast": float(st[i, 1]),
                            "sharpness": float(st[i, 2]),
                            "width": 300,
                            "height": 300,
                            "attention": None,
                        }
                    )
                record_inspections(s, rows)
                record_signals(s, signals)
            s.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("var/models/current"))
    ap.add_argument("--lines", type=int, default=5, help="lines per product")
    args = ap.parse_args()
    reference = load_reference(args.model)
    if reference is None:
        sys.exit(f"no drift reference in {args.model}: run `inspector demo` first")
    products = sorted(set(reference.products.tolist()))
    cfg = DriftSettings()
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='inspector-drift-')) / 'inspector.db'}"
    upgrade(url)
    db = make_engine(url)
    sessions = session_factory(db)
    with sessions() as s:
        model_id = register_model(s, "bench@1", str(args.model.resolve()), {}).id
        promote_model(s, model_id, "bench")
        s.commit()
    now = datetime.now(UTC)
    per_stream = cfg.window + cfg.baseline
    seed(sessions, reference, model_id, products, args.lines, per_stream, now)
    times, events = [], []
    for _ in range(4):  # one warm-up, then three timed
        start = time.perf_counter()
        with sessions() as s:
            events = run_drift_check(s, cfg, now=now)
        times.append(time.perf_counter() - start)
    streams = len(products) * args.lines
    median = statistics.median(times[1:])
    print(
        json.dumps(
            {
                "streams": streams,
                "inspections_per_stream": per_stream,
                "window": cfg.window,
                "baseline": cfg.baseline,
                "permutations": cfg.permutations,
                "check_all_s": round(median, 3),
                "per_stream_ms": round(median / streams * 1000, 1),
                "events_per_check": len(events),
                "alarms": sorted(
                    f"{e.product_id}/{e.line} {e.metric} {e.severity}" for e in events if e.severity != "ok"
                ),
            },
            indent=2,
        )
    )
    db.dispose()


if __name__ == "__main__":
    main()
