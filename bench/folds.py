"""Every physical part tested once: a product's manifest dealt into K folds of whole parts.

magnetic-tile's test split holds 13 defective tiles, so its escape rate reads as 15-64 % and can
tell neither that a target is met nor by how much it is missed. Fold j makes a copy of the
product folder whose manifest tests fold j, chooses on fold j + 1 and trains on the rest (the
calibration parts are held out of that train split as usual), so K trainings test every part
once, each by a model that never saw it. A part's images (a tile's lightings, the crops of one
board) stay in one fold, and each class is dealt round the folds in turn so that every fold holds
some of each.

The images are not copied: the fold's folders (``images``, ``masks``) are links to the product's
own, which also lets the classifier's feature cache (keyed by the resolved file) serve every fold.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from inspector.dataset import load_dataset

# beside the manifest and read with it (inspector/dataset.py); SOURCE.md and the like are not needed
KEPT_FILES = ("manual.md", "groups.csv", "tile_groups.csv", "corrections.csv")


def deal(parts: dict[str, str], k: int, seed: int = 0) -> dict[str, int]:
    """Each part (-> its class: a defective part's type, else ok) -> its fold. The parts of each
    class are shuffled and dealt round the folds, the deal going on from one class to the next, so
    the folds differ in size by at most one part."""
    rng, fold, at = random.Random(seed), {}, 0
    for cls in sorted(set(parts.values())):
        members = sorted(p for p, c in parts.items() if c == cls)
        rng.shuffle(members)
        for p in members:
            fold[p], at = at % k, at + 1
    return fold


def build_folds(product_dir: Path, k: int, out: Path, seed: int = 0, without_test: bool = False) -> list[Path]:
    """Write ``out/fold<j>/<product>`` for j < k -> the fold roots (each a data folder).
    ``without_test``: the manifest's test parts are left out of every fold, so that the folds can
    choose between settings on train and val parts alone and the test split stays unread."""
    if k < 3:
        raise ValueError("folds: at least 3 (a test, a val and a train fold)")
    with open(product_dir / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    if without_test:
        rows = [row for row in rows if row["split"].strip() != "test"]
    # the loader's own unit of a part (its group, or the larger image its crop was cut from)
    unit = {s.path.resolve(): s.unit for s in load_dataset([product_dir]).samples}
    part_of = {row["image"]: unit.get((product_dir / row["image"]).resolve(), row["image"]) for row in rows}
    parts: dict[str, str] = {}
    for row in rows:
        if row["defect_type"] != "ok" or part_of[row["image"]] not in parts:
            parts[part_of[row["image"]]] = row["defect_type"]
    fold = deal(parts, k, seed)
    roots = []
    for j in range(k):
        root = out / f"fold{j}"
        dest = root / product_dir.name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in KEPT_FILES:
            if (product_dir / name).is_file():
                shutil.copy2(product_dir / name, dest / name)
        for sub in (d for d in product_dir.iterdir() if d.is_dir()):  # where the manifest's images and masks lie
            (dest / sub.name).symlink_to(sub.resolve(), target_is_directory=True)
        with open(dest / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for row in rows:
                at = fold[part_of[row["image"]]]
                w.writerow(row | {"split": "test" if at == j else "val" if at == (j + 1) % k else "train"})
        roots.append(root)
    return roots


def pooled(folds: list[dict]) -> dict:
    """Per-fold test metrics of the station -> escape and FRR over every image tested (each fold's
    own beside them, and an approximate interval for the escape); AUROC, pixel AUROC and type-F1
    as the mean over folds (scores are scaled and cut per fold, so they are not pooled into one
    ranking)."""
    n_def = sum(m["n_defect"] for m in folds)
    n_good = sum(m["n"] - m["n_defect"] for m in folds)
    escaped = sum(m["escape_rate"] * m["n_defect"] for m in folds)
    rejected = sum(m["false_reject_rate"] * (m["n"] - m["n_defect"]) for m in folds)
    out = {
        "folds": len(folds),
        "defect_images": n_def,
        "defect_parts": sum(m.get("defect_parts", 0) for m in folds),
        "good_images": n_good,
        "escape_rate": escaped / n_def if n_def else None,
        "escape_low_high": _interval(folds, escaped / n_def) if n_def else None,
        "false_reject_rate": rejected / n_good if n_good else None,
        "frr_bounds": [m.get("frr_bound") for m in folds],
        "frr_broken": sum(
            m.get("frr_bound") is not None and m["false_reject_rate"] > m["frr_bound"] + 1e-12 for m in folds
        ),
    }
    for key in ("escape_rate", "false_reject_rate", "auroc", "pixel_auroc", "defect_type_macro_f1"):
        vals = [m[key] for m in folds if m.get(key) is not None]
        if vals:
            out[f"{key}_folds"] = vals
            if key not in ("escape_rate", "false_reject_rate"):
                out[key] = sum(vals) / len(vals)
    return out


def _interval(folds: list[dict], escape: float) -> list[float] | None:
    """About 95 %: each fold's own interval over its defective parts redrawn (``escape_low`` /
    ``escape_high``) read as a normal spread, the folds weighted by their defect images."""
    if any(m.get("escape_low") is None or m.get("escape_high") is None for m in folds):
        return None
    n = sum(m["n_defect"] for m in folds)
    var = sum((m["n_defect"] / n) ** 2 * ((m["escape_high"] - m["escape_low"]) / 3.92) ** 2 for m in folds)
    return [max(0.0, escape - 1.96 * var**0.5), min(1.0, escape + 1.96 * var**0.5)]
