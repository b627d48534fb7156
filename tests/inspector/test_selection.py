"""The deciding parts are chosen on val and on the train defects scored out of fold: folds keep a
physical part's images together, and many train defects outvote val's few."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspector.dataset import Sample
from inspector.decisions import fit_decision
from inspector.outputs import SplitOutputs, concat
from inspector.selection import part_folds


def _sample(name: str, kind: str, group: str = "") -> Sample:
    return Sample(Path(f"/parts/{name}.png"), "tile", kind, "train", group=group)


def test_folds_keep_each_physical_part_whole_and_hold_every_type():
    samples = []
    for tile in range(12):
        kind = ("crack", "blowhole", "ok")[tile % 3]
        for light in range(5):  # the same tile under five lightings
            samples.append(_sample(f"t{tile}_l{light}", kind if light else "ok", group=f"tile{tile}"))
    samples += [_sample(f"loose{i}", "ok") for i in range(7)]  # no group: each image its own part
    fold_of = part_folds(samples, 3, seed=0)
    assert set(fold_of) == {s.path for s in samples}
    for tile in range(12):
        assert len({fold_of[s.path] for s in samples if s.group == f"tile{tile}"}) == 1
    for kind in ("crack", "blowhole"):
        assert {fold_of[s.path] for s in samples if s.defect_type == kind} == {0, 1, 2}
    assert part_folds(samples, 3, seed=0) == fold_of  # a retrain with the same seed cuts the same folds


def test_folds_keep_every_crop_of_a_board_together():
    """pcb: a held-out defect crop whose good neighbours on its board taught the refitted parts
    would score as if seen before; the board moves whole, each crop keeping its own label."""
    samples = [
        Sample(Path(f"/parts/b{b}_{i}.png"), "pcb", ("short", "spur", "ok")[(b + i) % 3], "train", origin=f"board{b}")
        for b in range(9)
        for i in range(4)
    ]
    fold_of = part_folds(samples, 3, seed=0)
    for b in range(9):
        assert len({fold_of[s.path] for s in samples if s.origin == f"board{b}"}) == 1
    assert set(fold_of.values()) == {0, 1, 2}


def _outputs(good: dict[str, np.ndarray], defect: dict[str, np.ndarray]) -> SplitOutputs:
    n_good, n_def = len(next(iter(good.values()))), len(next(iter(defect.values())))
    samples = [_sample(f"x{i}", "ok") for i in range(n_good + n_def)]
    target = np.r_[np.zeros(n_good, int), np.ones(n_def, int)]
    return SplitOutputs("tile", samples, target, {k: np.r_[good[k], defect[k]] for k in good})


def test_many_out_of_fold_train_defects_outvote_a_few_val_defects():
    rng = np.random.default_rng(0)
    good = {"anomaly": rng.normal(0, 1, 150), "defect_head": rng.normal(0, 1, 150)}
    # val's three defects happen to stand out on the defect head only
    val = _outputs(good, {"anomaly": np.zeros(3), "defect_head": np.full(3, 6.0)})
    calib = _outputs({k: rng.normal(0, 1, 200) for k in good}, {k: np.zeros(0) for k in good})
    # the train defects, scored by parts that never learnt from them: the bank catches them, the head does not
    oof = _outputs({k: np.zeros(0) for k in good}, {"anomaly": rng.normal(6, 1, 120), "defect_head": np.zeros(120)})
    # val's best set taken outright (confidence 0), so the train defects' vote is all that changes it
    on_val = fit_decision(val, calib, False, 0.01, 0.05, confidence=0)
    both = fit_decision(val, calib, False, 0.01, 0.05, train_defects=oof, confidence=0)
    assert list(on_val.parts) == ["defect_head"]
    assert "anomaly" in both.parts and "out-of-fold" in both.selected_on
    assert both.thresholds.n_good == 200  # the thresholds still come from the calibration parts alone
    fixed = fit_decision(val, calib, False, 0.01, 0.05, parts=["defect_head"], train_defects=oof)
    assert list(fixed.parts) == ["defect_head"]


def test_folds_pool_over_the_scores_every_fold_has():
    """A fold too small for a segmentation head scores without one: the pooled evidence drops that score."""
    with_head = _outputs(
        {"anomaly": np.zeros(2), "segmentation": np.zeros(2)}, {"anomaly": np.ones(3), "segmentation": np.ones(3)}
    )
    without = _outputs({"anomaly": np.zeros(1)}, {"anomaly": np.ones(2)})
    pooled = concat([with_head, without])
    assert set(pooled.scores) == {"anomaly"} and len(pooled.scores["anomaly"]) == len(pooled.target) == 8
