"""Every part tested once: the folds of bench/folds.py keep a part's images together, test each
part in exactly one fold, deal every defect type round the folds, and pool what the folds measured."""

import csv
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

import folds
from PIL import Image

from inspector.dataset import load_dataset
from tests.helpers.synthetic import MANUAL


def _product(root: Path) -> Path:
    """A product of 30 tiles, each in two lightings: 18 good, 8 scratched, 4 spotted."""
    product = root / "washer"
    (product / "images").mkdir(parents=True)
    (product / "manual.md").write_text(MANUAL.format(product="washer"))
    rows, groups = [], []
    for t in range(30):
        cls = "ok" if t < 18 else "scratch" if t < 26 else "spot"
        for light in ("a", "b"):
            name = f"images/t{t:02d}{light}.png"
            Image.new("RGB", (16, 16), (8 * t, 8 * t, 8 * t)).save(product / name)
            label = "ok" if cls == "ok" else "defect"
            rows.append({"image": name, "product": "washer", "label": label, "defect_type": cls, "split": "train",
                         "mask": "", "source": ""})  # fmt: skip
            groups.append({"image": name, "tile_group": f"tile{t:02d}"})
    for name, table in (("manifest.csv", rows), ("tile_groups.csv", groups)):
        with open(product / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return product


def test_every_part_is_tested_once_with_its_lightings_and_every_defect_type_in_every_fold(tmp_path):
    roots = folds.build_folds(_product(tmp_path), 4, tmp_path / "folds")
    tested: Counter = Counter()
    for root in roots:
        ds = load_dataset([root])
        assert len(ds.samples) == 60 and not ds.bad  # the linked images load as the product's own
        splits = defaultdict(set)
        for s in ds.samples:
            splits[s.group].add(s.split)
        assert all(len(v) == 1 for v in splits.values())  # a tile's lightings never straddle splits
        test = [s for s in ds.samples if s.split == "test"]
        tested.update(s.group for s in test)
        assert {s.defect_type for s in test} == {"ok", "scratch", "spot"}
        assert {s.defect_type for s in ds.samples if s.split == "val"} == {"ok", "scratch", "spot"}
        assert 7 <= len({s.group for s in test}) <= 8  # 30 tiles over 4 folds
    assert len(tested) == 30 and set(tested.values()) == {2}  # each tile tested once, both lightings


def test_fewer_than_three_folds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 3"):
        folds.build_folds(_product(tmp_path), 2, tmp_path / "folds")


def test_the_folds_pool_their_images_not_their_rates():
    a = {"n": 100, "n_defect": 40, "escape_rate": 0.5, "false_reject_rate": 0.0, "frr_bound": 0.05, "auroc": 0.9,
         "escape_low": 0.3, "escape_high": 0.7, "defect_parts": 8}  # fmt: skip
    b = {"n": 100, "n_defect": 10, "escape_rate": 0.0, "false_reject_rate": 0.1, "frr_bound": 0.05, "auroc": 1.0,
         "escape_low": 0.0, "escape_high": 0.0, "defect_parts": 2}  # fmt: skip
    p = folds.pooled([a, b])
    assert p["escape_rate"] == pytest.approx(20 / 50)  # 20 of 50 defect images, not the mean of 50 % and 0 %
    assert p["false_reject_rate"] == pytest.approx(9 / 150)
    assert p["frr_broken"] == 1 and p["auroc"] == pytest.approx(0.95) and p["defect_parts"] == 10
    lo, hi = p["escape_low_high"]
    assert lo < 0.4 < hi


def test_the_report_gives_the_folds_their_own_section_and_target_rows():
    import accuracy

    fold = {"n": 269, "n_defect": 84, "escape_rate": 0.25, "false_reject_rate": 0.0, "frr_bound": 0.027,
            "auroc": 0.97, "escape_low": 0.1, "escape_high": 0.4, "defect_parts": 16,
            "defect_type_macro_f1": 0.6}  # fmt: skip
    runs = [fold, {**fold, "escape_rate": 0.35, "false_reject_rate": 0.05}]
    r = {"folds": {"magnetic-tile": {"command": "python bench/accuracy.py --only folds", "seed": 0, "minutes": 30.0,
                                     "per_fold": runs, "decisions": ["anomaly+classifier", "anomaly"],
                                     "pooled": folds.pooled(runs)}}}  # fmt: skip
    text = "\n".join(accuracy.folds_section("magnetic-tile", r["folds"]["magnetic-tile"]))
    assert "**escape 30.0 %**" in text and "the promise broke on 1 of 2 folds" in text
    assert "| 1 | anomaly | 35.0 % [10-40 %, 16 parts] | 5.0 % (≤ 2.7 %) | 0.970 | 0.600 |" in text
    rows = [x for x in accuracy.assessment(r) if x.startswith("| magnetic-tile (every part tested once, 2 folds")]
    escape = next(x for x in rows if "| escape_rate |" in x)
    assert escape.endswith("| **no** |") and "30.0 %" in escape
    assert any("| auroc | ≥ 0.970 | 0.970" in x and x.endswith("| yes |") for x in rows)


def test_folds_calibrated_on_too_few_parts_say_they_made_no_promise():
    import accuracy

    fold = {"n": 269, "n_defect": 84, "escape_rate": 0.25, "false_reject_rate": 0.02, "frr_bound": None,
            "auroc": 0.97, "escape_low": 0.1, "escape_high": 0.4, "defect_parts": 16, "calibration_parts": 36,
            "target_frr": 0.01}  # fmt: skip
    runs = [fold, {**fold, "calibration_parts": 37}]
    f = {"command": "c", "seed": 0, "minutes": 1.0, "per_fold": runs, "decisions": ["anomaly", "anomaly"],
         "pooled": folds.pooled(runs)}  # fmt: skip
    text = "\n".join(accuracy.folds_section("magnetic-tile", f))
    assert "no fold could make the promise: 36-37 good parts calibrated each, 99 needed" in text
    assert "| 0 | anomaly | 25.0 % [10-40 %, 16 parts] | 2.0 % (no promise: 36 good parts) |" in text
    station = {"escape_rate": [0.5, 0.1, 3], "false_reject_rate": [0.0, 0.0, 3], "calibration_parts": [35.0, 0.0, 3],
               "target_frr": [0.01, 0.0, 3]}  # fmt: skip
    head = {"command": "c", "machine": "m", "date": "d", "wall_minutes": 1, "backbone": "b", "text_encoder": "t",
            "anomaly": "a", "seeds": [0], "target_frr": 0.01}  # fmt: skip
    table = {"station": station, "parts": "anomaly", "escape_by_type": {}, "typing": "anomaly"}
    r = {**head, "main": {"magnetic-tile": table}}
    assert "| **station (selected)** | 50.0 % ± 10.0 % | 0.0 % (no promise: 35 good parts) |" in accuracy.markdown(r)
    row = next(x for x in accuracy.assessment(r) if "FRR" in x)
    assert row.endswith("| FRR within its bound | no promise: 35 good parts calibrated, 99 needed | 0.0 % | – |")


def test_folds_that_choose_between_settings_leave_the_test_split_unread(tmp_path):
    product = _product(tmp_path)
    with open(product / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:12]:  # tiles 0-5, both lightings: the manifest's test parts
        row["split"] = "test"
    with open(product / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    roots = folds.build_folds(product, 3, tmp_path / "folds", without_test=True)
    for root in roots:
        ds = load_dataset([root])
        assert len(ds.samples) == 48 and not {s.group for s in ds.samples} & {f"tile{t:02d}" for t in range(6)}
