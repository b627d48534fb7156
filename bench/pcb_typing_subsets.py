"""How much of pcb's defect-type error is the label's, not the model's?

A shared pcb defect crop is labelled with the type of the box at its centre, but 20 % of the
crops also hold most of another box of another type (../shared/data/pcb/SOURCE.md: "a crop may
also show parts of neighbouring defects"). Typing such a crop by the neighbour is not wrong on
the part, yet macro-F1 counts it wrong. This writes two product folders that differ only in
their test defects: those whose crop holds no other type, and those that do. Then:

    python bench/pcb_typing_subsets.py --deeppcb DIR --pcb FOLDER --out OUT
    inspector eval --model M --data OUT/single --split test
    inspector eval --model M --data OUT/multi --split test

FOLDER: the shared pcb folder or one built by bench/pcb_tested_windows.py --build; DIR: a
checkout of github.com/tangsanli5201/DeepPCB (commit 08e98c4). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from pcb_tested_windows import boxes

TYPES = {1: "open", 2: "short", 3: "mousebite", 4: "spur", 5: "copper", 6: "pin_hole"}
SIZE, INSIDE = 128, 0.5  # crop side; share of another box inside the crop that makes it visible


def other_types(row: dict, deeppcb: Path) -> set[str]:
    """Defect types other than the label's whose box lies at least ``INSIDE`` within the crop."""
    k, x, y = map(int, re.search(r"box(\d+)_x(\d+)_y(\d+)", row["image"]).groups())
    found = set()
    for i, (x1, y1, x2, y2, t) in enumerate(boxes(deeppcb, row["source"])):
        ix = max(0, min(x2, x + SIZE) - max(x1, x))
        iy = max(0, min(y2, y + SIZE) - max(y1, y))
        if i != k and ix * iy >= INSIDE * (x2 - x1) * (y2 - y1) and TYPES[t] != row["defect_type"]:
            found.add(TYPES[t])
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deeppcb", type=Path, required=True)
    ap.add_argument("--pcb", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.pcb / "manifest.csv")))
    mixed = {r["image"] for r in rows if r["label"] == "defect" and "_box" in r["image"] and other_types(r, a.deeppcb)}
    counts = {}
    for name, keep_mixed in (("single", False), ("multi", True)):
        folder = a.out / name
        folder.mkdir(parents=True, exist_ok=True)
        kept = []
        for r in rows:
            if r["split"] == "test" and r["label"] == "defect" and (r["image"] in mixed) != keep_mixed:
                continue
            kept.append({**r, "image": str((a.pcb / r["image"]).resolve())})
        with open(folder / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(kept)
        (folder / "manual.md").write_text((a.pcb / "manual.md").read_text())
        counts[name] = sum(r["split"] == "test" and r["label"] == "defect" for r in kept)
    share = {
        s: sum(r["image"] in mixed for r in rows if r["split"] == s and r["label"] == "defect")
        for s in ("train", "val", "test")
    }
    print(json.dumps({"test_defects": counts, "crops_with_another_type": share}))


if __name__ == "__main__":
    main()
