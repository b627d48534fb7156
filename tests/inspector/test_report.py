"""What a report says of a product: where its false-reject promise breaks (bad luck or changed
parts), what a threshold stands on, and what the station without its manual is credited with."""

from pathlib import Path

import numpy as np

from inspector.dataset import Sample
from inspector.evaluation import decision_metrics
from inspector.outputs import SplitOutputs
from inspector.report import metrics_table, percent, threshold_basis, warnings
from models.calibration import Thresholds, frr_bound, frr_chance
from models.card import Decision, ModelCard, PartScale, ProductCard, ThresholdBasis, ThresholdSetter


def _split(good: np.ndarray, defect: np.ndarray, split: str, per_part: int = 1) -> SplitOutputs:
    kinds = ["ok"] * len(good) + ["crack"] * len(defect)
    samples = [
        Sample(Path(f"/{split}/{i}.png"), "tile", k, split, group=f"{split}-{i // per_part}")
        for i, k in enumerate(kinds)
    ]
    target = np.array([k != "ok" for k in kinds], dtype=np.int64)
    return SplitOutputs("tile", samples, target, {"anomaly": np.r_[good, defect]})


def _decision(calib: SplitOutputs) -> Decision:
    good = np.sort(calib.scores["anomaly"][~calib.is_defect])
    th = Thresholds(warn=float(good[-10]), reject=float(good[-2]), target_frr=0.01, n_good=len(good), guaranteed=True)
    return Decision(parts={"anomaly": PartScale()}, thresholds=th, calibrated_on="test")


def test_a_broken_promise_says_whether_a_few_parts_or_the_line_changed():
    rng = np.random.default_rng(0)
    calib = _split(rng.normal(size=200), np.array([]), "calib")
    decision = _decision(calib)
    odd = rng.normal(size=86)
    odd[:5] = 8.0  # five odd good parts, the rest like the calibration's
    m = decision_metrics(_split(odd, np.full(20, 9.0), "test"), decision, calib=calib)
    assert m["false_reject_rate"] > m["frr_bound"] and m["frr_chance"] < 0.05
    (line,) = [w for w in warnings({"tile": m}) if "promise did not hold" in w]
    assert "chance gives this many or more" in line and "a few odd parts did it" in line

    shifted = decision_metrics(_split(rng.normal(1.5, 1, 86), np.full(20, 9.0), "test"), decision, calib=calib)
    (line,) = [w for w in warnings({"tile": shifted}) if "promise did not hold" in w]
    assert "less than 1 time in 1000" in line and "they changed" in line


def test_a_kept_promise_says_nothing_and_no_calibration_means_no_shift_test():
    rng = np.random.default_rng(1)
    calib = _split(rng.normal(size=200), np.array([]), "calib")
    m = decision_metrics(_split(rng.normal(size=86), np.full(20, 9.0), "test"), _decision(calib))
    assert "good_shift_p" not in m and m["frr_chance"] > 0.05
    assert not [w for w in warnings({"tile": m}) if "promise" in w]


def test_the_table_gives_the_escape_with_its_interval_over_parts():
    rng = np.random.default_rng(2)
    calib = _split(rng.normal(size=200), np.array([]), "calib")
    test = _split(rng.normal(size=86), np.r_[np.zeros(10), np.full(10, 9.0)], "test")  # half the defects pass
    m = decision_metrics(test, _decision(calib))
    assert m["escape_rate"] == 0.5 and m["defect_parts"] == 20
    assert m["escape_low"] < 0.5 < m["escape_high"]
    row = next(line for line in metrics_table({"tile": m}).splitlines() if line.startswith("tile"))
    assert f"50.0% [{100 * m['escape_low']:.0f}-{100 * m['escape_high']:.0f}%]" in row


def test_a_broken_promise_on_tiles_says_their_images_fail_together():
    rng = np.random.default_rng(0)
    calib = _split(rng.normal(size=204), np.array([]), "calib", per_part=6)
    good = np.repeat(rng.normal(size=15), 6)
    good[:12] = 8.0  # two tiles, all six lightings of each rejected
    m = decision_metrics(_split(good, np.full(12, 9.0), "test", per_part=6), _decision(calib), calib=calib)
    assert m["good_parts"] == 15 and m["defect_parts"] == 2
    (line,) = [w for w in warnings({"tile": m}) if "promise did not hold" in w]
    assert "if every image were its own part" in line and "a few odd parts did it" in line


def test_a_promise_made_on_tiles_is_judged_in_tiles():
    rng = np.random.default_rng(0)
    calib = _split(np.repeat(rng.normal(size=120), 6), np.array([]), "calib", per_part=6)
    good = np.sort(calib.scores["anomaly"])
    counted = Thresholds(float(good[-10]), float(good[-2]), 0.01, len(good), True, n_parts=120)
    decision = Decision(parts={"anomaly": PartScale()}, thresholds=counted, calibrated_on="test")
    test_good = np.repeat(rng.normal(size=30), 6)
    test_good[:6] = 8.0  # one tile of 30, all six lightings rejected: 1 in 5 by chance, not a broken promise
    m = decision_metrics(_split(test_good, np.full(12, 9.0), "test", per_part=6), decision, calib=calib)
    assert m["false_reject_rate"] == 6 / 180 and m["frr_law_counts_parts"]
    assert m["frr_bound"] == frr_bound(120, 30, 0.01) and m["frr_chance"] == frr_chance(120, 30, 0.01, 1)
    assert frr_bound(720, 180, 0.01) < 6 / 180  # counted in images, it would have read as one
    assert not [w for w in warnings({"tile": m}) if "promise did not hold" in w]
    test_good[6:12] = 8.0  # a second tile: 1 in 26
    m = decision_metrics(_split(test_good, np.full(12, 9.0), "test", per_part=6), decision, calib=calib)
    assert m["frr_chance"] == frr_chance(120, 30, 0.01, 2) < 0.05
    (line,) = [w for w in warnings({"tile": m}) if "promise did not hold" in w]
    assert "if every image were its own part" not in line
    few = Thresholds(float(good[-10]), float(good[-1]), 0.01, 204, False, n_parts=34)
    m = decision_metrics(_split(test_good, np.full(12, 9.0), "test", per_part=6), decision.model_copy(
        update={"thresholds": few}))  # fmt: skip
    assert m["frr_bound"] is None and "frr_chance" not in m
    (line,) = [w for w in warnings({"tile": m}) if "promise" in w]
    assert "too few good parts to calibrate on (34 parts; a 1% promise needs 99, they back 2.9% or more" in line


def test_training_names_the_good_parts_a_reject_threshold_stands_on():
    th = Thresholds(warn=1.0, reject=2.0, target_frr=0.01, n_good=200, guaranteed=True)
    setter = ThresholdSetter(image="/data/ok/tile177_exp3.jpg", part="tile177", score=2.31)
    basis = ThresholdBasis(set_by=[setter], reject_without=1.49, val_escape=0.38, val_escape_without=0.27)
    with_basis = Decision(parts={"anomaly": PartScale()}, thresholds=th, basis=basis)
    plain = Decision(parts={"anomaly": PartScale()}, thresholds=th)
    products = {
        name: ProductCard(name=name, classes=["ok", "crack"], manual_sha256="", decision=d, image_only=d)
        for name, d in (("tile", with_basis), ("cell", plain))
    }
    card = ModelCard(created_at="now", products=products, fallback=plain)
    text = threshold_basis(card)
    assert "tile: reject > 2.00 (its 1% promise) is set by /data/ok/tile177_exp3.jpg (2.31)" in text
    assert "if they are defective: reject > 1.49, val defects passing 38% -> 27%" in text
    assert "cell" not in text  # nothing recorded, nothing to look at
    assert threshold_basis(card, ["cell"]) == ""
    few = Thresholds(warn=2.0, reject=2.0, target_frr=0.01, n_good=20, guaranteed=False)
    unpromised = with_basis.model_copy(update={"thresholds": few, "basis": ThresholdBasis(set_by=[setter])})
    card.products["tile"] = card.products["tile"].model_copy(update={"decision": unpromised})
    assert "(the largest score: too few for a promise) is set by" in threshold_basis(card)
    assert "if they are defective" not in threshold_basis(card)


def test_the_station_without_its_manual_is_not_credited_with_naming_defect_types():
    """Without a manual the station names no defect type (the verdict says image-only), so the
    image-only row of a report must not carry the type-F1 of types read from the manual."""
    rng = np.random.default_rng(0)
    test = _split(rng.normal(size=40), np.full(20, 9.0), "test")
    test.types["classifier"] = np.tile([[1.0, 0.0]], (60, 1))  # every defect named right
    test.target[40:50] = 1
    test.target[50:] = 2
    test.types["classifier"][50:] = [0.0, 1.0]
    decision = _decision(_split(rng.normal(size=200), np.array([]), "calib"))
    with_manual = decision_metrics(test, decision)
    without = decision_metrics(test, decision, image_only=True)
    assert with_manual["defect_type_macro_f1"] == 1.0
    assert "defect_type_macro_f1" not in without and "macro_f1" not in without
    assert without["escape_rate"] == with_manual["escape_rate"]  # its detection is still measured


def test_a_promise_reads_as_people_write_it():
    assert [percent(x) for x in (0.01, 0.028, 0.0005, 0.2)] == ["1%", "2.8%", "0.05%", "20%"]
