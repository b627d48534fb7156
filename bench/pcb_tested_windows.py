"""Does the pcb model see defects, or only which kind of DeepPCB image a crop came from?

The shared pcb set takes its good crops from DeepPCB's defect-free *template* images and its
defect crops from the *tested* images (../shared/data/pcb/SOURCE.md). On a line every part is
a tested image, so a model that has learnt "tested image = defect" promises a false-reject rate
it cannot keep. This script cuts defect-free windows out of the tested images themselves (128 px,
no annotated box within 8 px, neither pure copper nor pure substrate: the rule the shared set
used for its template crops), one per tested image, and beside each the template's window at
the same place.

    # the station's rejects on those windows (test split pairs), beside the template windows:
    python bench/pcb_tested_windows.py --deeppcb DIR --model var/models/current
    # a pcb product folder: the shared rows plus the windows as good parts, in their pairs' splits:
    python bench/pcb_tested_windows.py --deeppcb DIR --build /tmp/pcb-tested

DIR is a checkout of github.com/tangsanli5201/DeepPCB (commit 08e98c4, the one the shared set
was cut from; research use only). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZE, MARGIN = 128, 8


def pairs_by_split(shared: Path) -> dict[str, str]:
    """Tested image (DeepPCB path) -> split, from every shared row (a pair is in one split)."""
    out = {}
    with open(shared / "manifest.csv", newline="") as f:
        for r in csv.DictReader(f):
            out[r["source"].replace("_temp.jpg", "_test.jpg")] = r["split"]
    return out


def boxes(deeppcb: Path, tested: str) -> list[list[int]]:
    """The tested image's annotated boxes, each [x1, y1, x2, y2, type] (DeepPCB's type number)."""
    p = Path(tested)
    ann = deeppcb / p.parent.parent / (p.parent.name + "_not") / p.name.replace("_test.jpg", ".txt")
    return [list(map(int, line.replace(",", " ").split()[:5])) for line in ann.read_text().splitlines() if line.strip()]


def overlaps(box: list[int], x: int, y: int) -> bool:
    """Whether the window at (x, y) comes within MARGIN px of ``box`` (x1, y1, x2, y2)."""
    return x < box[2] + MARGIN and box[0] - MARGIN < x + SIZE and y < box[3] + MARGIN and box[1] - MARGIN < y + SIZE


def window(im: np.ndarray, bs: list[list[int]], rng: random.Random) -> tuple[int, int] | None:
    """Top-left corner of a defect-free window of the tested image ``im`` (boxes ``bs``), or None
    after 200 tries."""
    h, w = im.shape
    for _ in range(200):
        x, y = rng.randrange(0, w - SIZE), rng.randrange(0, h - SIZE)
        if any(overlaps(b, x, y) for b in bs):
            continue
        if 0.002 < float((im[y : y + SIZE, x : x + SIZE] < 128).mean()) < 0.998:
            return x, y
    return None


def cut(im: np.ndarray, x: int, y: int, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # JPEG at quality 95, as the shared crops: a lossless good crop beside JPEG defect crops would
    # be one more thing to tell them apart by
    Image.fromarray(im[y : y + SIZE, x : x + SIZE]).save(dest, quality=95)


def gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def windows(deeppcb: Path, shared: Path, dest: Path) -> list[dict]:
    """Cut both windows per tested image into ``dest`` -> rows (image, template, split, source)."""
    rng = random.Random(20261201)
    rows = []
    for tested, split in sorted(pairs_by_split(shared).items()):
        im = gray(deeppcb / tested)
        at = window(im, boxes(deeppcb, tested), rng)
        if at is None:
            continue
        name = f"{Path(tested).stem}_x{at[0]}_y{at[1]}.jpg"
        cut(im, *at, dest / "images" / "ok_tested" / name)
        cut(gray(deeppcb / tested.replace("_test.jpg", "_temp.jpg")), *at, dest / "template_same_place" / name)
        rows.append({"image": f"images/ok_tested/{name}", "template": f"template_same_place/{name}", "split": split,
                     "source": f"DeepPCB/{tested} window x={at[0]} y={at[1]} (no box within {MARGIN} px)"})  # fmt: skip
    return rows


def board(source: str) -> str:
    """The DeepPCB pair a crop was cut from: its tested and template image show one board."""
    return source.split(" window")[0].removeprefix("DeepPCB/").replace("_temp.jpg", "").replace("_test.jpg", "")


def build(rows: list[dict], shared: Path, dest: Path) -> None:
    """A pcb product folder: every shared row (absolute image paths) plus the tested windows as ok.
    Every crop names its board as its origin, so calibration and the bank's folds take whole
    boards (a window whose template crop taught the bank is not a new board). No groups: a group is
    one physical part, and a defect-free window of a board with defects elsewhere is a good
    part, not a doubtful one."""
    shutil.copyfile(shared / "manual.md", dest / "manual.md")
    fields = ["image", "product", "label", "defect_type", "split", "mask", "source", "origin"]
    with open(shared / "manifest.csv", newline="") as f, open(dest / "manifest.csv", "w", newline="") as g:
        out = csv.DictWriter(g, fieldnames=fields)
        out.writeheader()
        for r in csv.DictReader(f):
            out.writerow({**r, "image": str((shared / r["image"]).resolve()), "origin": board(r["source"])})
        for r in rows:
            ok = {"product": "pcb", "label": "ok", "defect_type": "ok", "mask": "", "origin": board(r["source"])}
            out.writerow({**ok, "image": r["image"], "split": r["split"], "source": r["source"]})


def build_once(deeppcb: Path, shared: Path, dest: Path) -> None:
    """``build`` unless this script already built ``dest`` from the same inputs. Cutting again
    would give every window a new modification time, and the feature caches, keyed on it, would
    extract all of them again on every benchmark run."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update((shared / "manifest.csv").read_bytes())
    h.update(str(deeppcb.resolve()).encode())
    stamp = dest / ".built-from"
    if stamp.exists() and stamp.read_text() == h.hexdigest() and (dest / "manifest.csv").exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    build(windows(deeppcb, shared, dest), shared, dest)
    stamp.write_text(h.hexdigest())


def reject_rates(model: Path, dest: Path, rows: list[dict], split: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from inspector.engine import Engine
    from inspector.images import load_image

    engine = Engine(model, "cpu")
    picked = [r for r in rows if r["split"] == split]
    out = {"windows": len(picked)}
    for kind in ("image", "template"):
        images = [load_image(dest / r[kind]) for r in picked]
        verdicts = [v for i in range(0, len(images), 16) for v in engine.inspect_arrays("pcb", images[i : i + 16])]
        key = "tested" if kind == "image" else "template"
        out[f"{key}_rejected"] = float(np.mean([v.verdict == "reject" for v in verdicts]))
        out[f"{key}_not_accepted"] = float(np.mean([v.verdict != "accept" for v in verdicts]))
    card = engine.card.products["pcb"].decision
    out["decided_by"] = "+".join(card.parts)
    out["target_frr"] = card.thresholds.target_frr
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deeppcb", type=Path, required=True, help="a checkout of tangsanli5201/DeepPCB")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data" / "pcb")
    ap.add_argument("--build", type=Path, help="write a pcb product folder with the tested windows as good parts")
    ap.add_argument("--model", type=Path, help="report this model's rejects on the windows")
    ap.add_argument("--split", default="test", help="whose pairs' windows --model scores (default: test)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pcb-tested-windows"), help="where windows are cut")
    a = ap.parse_args()
    dest = a.build or a.work
    dest.mkdir(parents=True, exist_ok=True)
    rows = windows(a.deeppcb, a.shared, dest)
    result: dict = {"windows": {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}}
    if a.build:
        build(rows, a.shared, dest)
        result["built"] = str(dest)
    if a.model:
        result["station"] = reject_rates(a.model, dest, rows, a.split)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
