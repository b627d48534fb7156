"""Validate the drift detectors on real images: detection delay of simulated line changes and the
false-alarm rate of unchanged production. Prints JSON (and writes it with --out).

Per product: the reference is up to 300 good parts of the train split (as training writes it);
production windows are drawn from good parts of val + test (never in the reference), unchanged
or changed: 30 % darker, Gaussian blur (sigma 2), defect images (a defect type the reference
never showed: glass-bottle's defects are absent from its train split), or good parts of another
product. A window alarms when any detector is at warn or above (embedding MMD on the projected
features, PSI of brightness / contrast / sharpness), with the thresholds of DriftSettings.

    python bench/drift.py                  # the demo's solar cells, plus ../shared/data when present
    python bench/drift.py --out docs/drift_validation.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspector.dataset import load_dataset
from inspector.demo import build_demo
from inspector.drift import embedding_drift, stat_drift
from inspector.settings import DriftSettings
from models import create_image_encoder
from models.drift import fit_projection
from tests.helpers.shifts import blurred, darker, load_all, signals

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OTHER = {"solar-cell-mono": "solar-cell-poly", "magnetic-tile": "pcb", "pcb": "magnetic-tile", "glass-bottle": "pcb"}
SIZES = (10, 20, 50, 100)


def product_cases(ds, product: str, rng: random.Random, pool_size: int) -> tuple[list, dict]:
    samples = [s for s in ds.samples if s.product == product]
    ok_train = [s for s in samples if s.defect_type == "ok" and s.split == "train"]
    ok_held = [s for s in samples if s.defect_type == "ok" and s.split != "train"]
    defects = [s for s in samples if s.is_defect]
    other = [s for s in ds.samples if s.product == OTHER[product] and s.defect_type == "ok"]
    ref = rng.sample(ok_train, min(300, len(ok_train)))
    held = load_all(s.path for s in rng.sample(ok_held, min(pool_size, len(ok_held))))
    return ref, {
        "unchanged": held,
        "brightness_-30%": [darker(im) for im in held],
        "gaussian_blur": [blurred(im) for im in held],
        "unseen_defect": load_all(s.path for s in rng.sample(defects, min(pool_size, len(defects)))),
        "other_product": load_all(s.path for s in rng.sample(other, min(pool_size, len(other)))),
    }


def alarms(ref_emb, ref_stats, emb, stats, cfg, seed) -> dict[str, bool]:
    found = [embedding_drift(ref_emb, emb, cfg, seed), *stat_drift(ref_stats, stats, cfg)]
    out = {f.metric: f.severity != "ok" for f in found}
    out["any"] = any(out.values())
    out["any_high"] = any(f.severity == "high" for f in found)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20, help="random windows per case and size")
    ap.add_argument("--pool", type=int, default=150, help="images per case to draw windows from")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = DriftSettings(permutations=1000)
    roots = [build_demo(Path("var/demo"))]
    products = ["solar-cell-mono"]
    if (SHARED / "README.md").exists():
        roots += [SHARED / p for p in ("magnetic-tile", "pcb", "glass-bottle")]
        products += ["magnetic-tile", "pcb", "glass-bottle"]
    ds = load_dataset(roots)
    encoder = create_image_encoder("efficientnet_lite0").eval()
    started = time.time()
    result = {"settings": cfg.model_dump(), "windows_per_size": args.windows, "products": {}}
    for product in products:
        rng = random.Random(0)
        ref, cases = product_cases(ds, product, rng, args.pool)
        ref_pooled, ref_stats = signals(encoder, load_all(s.path for s in ref))
        proj = fit_projection(ref_pooled)
        ref_emb = proj(ref_pooled)
        out = {"reference": len(ref)}
        for name, images in cases.items():
            pooled, stats = signals(encoder, images)
            emb = proj(pooled)
            per_size = {}
            for size in SIZES:
                if size > len(images):
                    continue
                draws = np.random.default_rng(size)
                hits = [
                    alarms(ref_emb, ref_stats, emb[idx], stats[idx], cfg, i)
                    for i, idx in enumerate(draws.choice(len(images), size, replace=False) for _ in range(args.windows))
                ]
                per_size[size] = {k: float(np.mean([h[k] for h in hits])) for k in hits[0]}
            detected = [s for s, r in per_size.items() if r["any"] >= 0.9]
            out[name] = {
                "pool": len(images),
                "alarm_rate_by_window": per_size,
                "detected_within": min(detected) if detected and name != "unchanged" else None,
            }
            print(product, name, {s: round(r["any"], 2) for s, r in per_size.items()}, file=sys.stderr)
        result["products"][product] = out
    result["seconds"] = round(time.time() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
