"""Builders of realistic inspection rows for store, dashboard and benchmark seeding."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
DEFECTS = {"tile": ["crack", "blowhole", "fray"], "pcb": ["short", "open"]}


def inspection_rows(n: int, seed: int = 0, start: datetime = START, step_s: float = 37.0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        product = "tile" if i % 3 else "pcb"
        r = rng.random()
        verdict = "accept" if r < 0.8 else "reject" if r < 0.93 else "review" if r < 0.99 else "error"
        defect = rng.choice(DEFECTS[product]) if verdict in ("reject", "review") else None
        rows.append(
            {
                "uuid": f"{seed:04d}-{i:012d}",
                "captured_at": start + timedelta(seconds=i * step_s),
                "line": f"L{1 + i % 2}",
                "station": "S1",
                "camera": "cam0",
                "product_id": product,
                "part_serial": f"SN{i:08d}",
                "image_sha256": f"{i:064x}",
                "image_size": 1000,
                "verdict": verdict,
                "defect_type": defect,
                "confidence": round(rng.random(), 4),
                "defect_score": round(rng.random(), 4),
                "classifier_score": round(rng.random(), 4),
                "anomaly_score": round(10 * rng.random(), 4),
                "latency_ms": 12.5,
                "error": "decode failed" if verdict == "error" else None,
            }
        )
    return rows
