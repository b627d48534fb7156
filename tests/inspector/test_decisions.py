"""Choosing a product's deciding parts on val: the criterion looks at the low false-reject
range, not at the single good part that sets the 1 % quantile."""

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from inspector.dataset import Sample
from inspector.decisions import choose_typing, fit_decision
from inspector.outputs import SplitOutputs
from models.calibration import conformal_quantile
from models.decision import combine, escape_at_quantile, low_frr_escape, type_probs, win_rate


def test_one_outlying_good_part_does_not_decide_the_choice():
    rng = np.random.default_rng(0)
    is_defect = np.r_[np.zeros(120), np.ones(60)].astype(bool)
    # a: separates well everywhere but one good part scores very high (the 99th percentile lands on it)
    a = np.r_[rng.normal(0, 1, 118), [9.0, 9.5], rng.normal(4, 1, 60)]
    # b: worse separation, no outlier
    b = np.r_[rng.normal(0, 1, 120), rng.normal(1.5, 1, 60)]
    assert escape_at_quantile(a, is_defect, 0.01) > escape_at_quantile(b, is_defect, 0.01)  # the old criterion
    assert low_frr_escape(a, is_defect, 0.01) < low_frr_escape(b, is_defect, 0.01)  # the new one


def test_the_range_stays_at_low_false_reject_rates():
    is_defect = np.r_[np.zeros(100), np.ones(10)].astype(bool)
    score = np.r_[np.arange(100.0), np.full(10, 85.0)]  # caught only once 15 % of good parts are rejected
    assert low_frr_escape(score, is_defect, 0.01) == 1.0


def _split(scores: dict[str, np.ndarray], n_good: int, parts: list[str], origins: bool = False) -> SplitOutputs:
    """``parts``: each image's physical part, or with ``origins`` the board it was cut from."""
    kinds = ["ok"] * n_good + ["crack"] * (len(parts) - n_good)
    samples = [
        Sample(Path(f"/val/{i}.png"), "tile", k, "val", **{"origin" if origins else "group": g})
        for i, (k, g) in enumerate(zip(kinds, parts, strict=True))
    ]
    return SplitOutputs("tile", samples, np.array([k != "ok" for k in kinds], dtype=np.int64), scores)


def test_a_smaller_set_must_beat_all_scores_beyond_chance():
    n_good, n_def = 150, 60
    good = norm.ppf((np.arange(n_good) + 0.5) / n_good)  # good parts, evenly spread
    calib = _split({k: np.r_[good, good] for k in ("anomaly", "segmentation")}, 300, [f"c{i}" for i in range(300)])
    # the second score is noise: it adds nothing on defects and lifts the good parts' tail, so the
    # 20 defects near the bank's threshold escape more often with it
    noise = np.random.default_rng(3).normal(0, 1, n_good + n_def)
    scores = {"anomaly": np.r_[good, np.linspace(1.0, 4.0, 20), np.full(40, 6.0)], "segmentation": noise}
    goods = [f"g{i}" for i in range(n_good)]

    on_tiles = _split(scores, n_good, goods + [f"tile{i // 20}" for i in range(n_def)])  # 3 tiles, 20 lightings each
    assert list(fit_decision(on_tiles, calib, False, 0.01, 0.05, confidence=0).parts) == ["anomaly"]  # val's best
    kept = fit_decision(on_tiles, calib, False, 0.01, 0.05)
    assert set(kept.parts) == {"anomaly", "segmentation"}  # one tile does not settle it: all the evidence decides
    assert "all scores" in kept.selected_on

    on_boards = _split(scores, n_good, goods + [f"board{i // 20}" for i in range(n_def)], origins=True)
    assert set(fit_decision(on_boards, calib, False, 0.01, 0.05).parts) == {"anomaly", "segmentation"}  # 3 boards

    on_parts = _split(scores, n_good, goods + [f"d{i}" for i in range(n_def)])  # the same gap over 20 parts
    dropped = fit_decision(on_parts, calib, False, 0.01, 0.05)
    assert list(dropped.parts) == ["anomaly"] and "beats all scores" in dropped.selected_on


def test_a_score_on_probation_decides_only_where_it_beats_the_others_beyond_chance():
    n_good, n_def = 150, 60
    good = norm.ppf((np.arange(n_good) + 0.5) / n_good)
    calib = _split({k: np.r_[good, good] for k in ("anomaly", "segmentation")}, 300, [f"c{i}" for i in range(300)])
    goods = [f"g{i}" for i in range(n_good)]
    bank = np.r_[good, np.linspace(1.0, 4.0, 20), np.full(40, 6.0)]
    noise = np.random.default_rng(3).normal(0, 1, n_good + n_def)
    tiles = goods + [f"tile{i // 20}" for i in range(n_def)]
    on_tiles = _split({"anomaly": bank, "segmentation": noise}, n_good, tiles)
    # the same split that keeps every score when all are trusted (the test above) leaves the noise out
    assert set(fit_decision(on_tiles, calib, False, 0.01, 0.05).parts) == {"anomaly", "segmentation"}
    left_out = fit_decision(on_tiles, calib, False, 0.01, 0.05, probation=frozenset({"segmentation"}))
    assert list(left_out.parts) == ["anomaly"] and "segmentation on probation, left out" in left_out.selected_on
    # a head that catches the defects the bank lets through, on 20 parts, earns its place
    head = np.r_[good, np.full(20, 6.0), np.linspace(-1.0, 1.0, 40)]
    on_parts = _split({"anomaly": bank, "segmentation": head}, n_good, goods + [f"d{i}" for i in range(n_def)])
    earned = fit_decision(on_parts, calib, False, 0.01, 0.05, probation=frozenset({"segmentation"}))
    assert "segmentation" in earned.parts and "beats all scores" in earned.selected_on


def test_redraws_of_one_part_count_once():
    rng = np.random.default_rng(2)
    is_defect = np.r_[np.zeros(100), np.ones(30)].astype(bool)
    a = np.r_[rng.normal(0, 1, 100), rng.normal(4, 1, 30)]
    b = a.copy()
    b[100:110] = 0.0  # b misses ten defects ...
    own = np.array([f"p{i}" for i in range(130)])
    assert win_rate(a, b, is_defect, own, 0.01) > 0.95  # ... of ten parts: a is better beyond chance
    one = own.copy()
    one[100:110] = "tile"  # ... of one tile seen ten times: a redraw without that tile often ties
    assert win_rate(a, b, is_defect, one, 0.01) < 0.95


def _two_scores(a: np.ndarray, b: np.ndarray, n_good: int) -> SplitOutputs:
    return _split({"anomaly": a, "segmentation": b}, n_good, [f"p{i}" for i in range(len(a))])


def _calib(n: int = 300) -> SplitOutputs:
    rng = np.random.default_rng(7)
    return _two_scores(rng.normal(0, 1, n), rng.normal(0, 1, n), n)


def test_scores_that_each_see_a_defect_a_little_are_pooled_by_their_mean():
    rng = np.random.default_rng(4)
    n_good, n_def = 200, 100
    # each score alone is half-sure of every defect, and their noise is independent
    a = np.r_[rng.normal(0, 1, n_good), rng.normal(2.0, 1, n_def)]
    b = np.r_[rng.normal(0, 1, n_good), rng.normal(2.0, 1, n_def)]
    val, calib = _two_scores(a, b, n_good), _calib()
    d = fit_decision(val, calib, False, 0.01, 0.05, parts=["anomaly", "segmentation"])
    assert d.pooling == "mean" and "pooled by their mean" in d.selected_on
    mean = combine(calib.scores, d.parts, "mean")  # the threshold is a quantile of the pooled score
    assert d.thresholds.reject == conformal_quantile(mean, 0.01)[0]
    pinned = fit_decision(val, calib, False, 0.01, 0.05, parts=["anomaly", "segmentation"], pooling="max")
    assert pinned.pooling == "max"  # the setting pins it


def test_a_defect_only_one_score_sees_keeps_the_largest():
    rng = np.random.default_rng(5)
    n_good, n_def = 200, 100
    # half the defects trip only the bank (a type the classifier never saw), half only the classifier
    a = np.r_[rng.normal(0, 1, n_good), rng.normal(6, 1, n_def // 2), rng.normal(0, 1, n_def // 2)]
    b = np.r_[rng.normal(0, 1, n_good), rng.normal(0, 1, n_def // 2), rng.normal(6, 1, n_def // 2)]
    d = fit_decision(_two_scores(a, b, n_good), _calib(), False, 0.01, 0.05, parts=["anomaly", "segmentation"])
    assert d.pooling == "max" and "pooled by their largest" in d.selected_on


def _typed(types: dict[str, np.ndarray], truth: np.ndarray, turned: np.ndarray | None = None) -> SplitOutputs:
    samples = [Sample(Path(f"/val/{i}.png"), "tile", f"t{t}", "val") for i, t in enumerate(truth)]
    return SplitOutputs("tile", samples, truth + 1, {}, types, turned_types=turned)


def test_two_typers_that_err_on_different_defects_type_together():
    """Each part is unsure (and wrong) where the other is sure: their mean names every defect."""
    truth = np.repeat([0, 1, 2], 10)
    sure, unsure = np.eye(3) * 0.8 + 0.1, np.array([0.3, 0.2, 0.5])  # unsure: leans to type 2
    classifier = np.array([unsure if t == 0 else sure[t] for t in truth])
    anomaly = np.array([unsure if t == 1 else sure[t] for t in truth])
    val = _typed({"classifier": classifier, "anomaly": anomaly}, truth)
    assert choose_typing(val)[:2] == ("both", 1)
    assert (type_probs("both", val.types).argmax(1) == truth).all()
    alone = _typed({"classifier": classifier, "anomaly": np.array([sure[t] for t in truth])}, truth)
    assert choose_typing(alone)[:2] == ("anomaly", 1)  # the mean must beat the best part, not tie it


def test_types_over_more_views_are_chosen_only_where_they_name_val_defects_strictly_better():
    """Each view costs a classifier pass per part not accepted: more views only where val gains."""
    truth = np.repeat([0, 1, 2], 10)
    sure, unsure = np.eye(3) * 0.8 + 0.1, np.array([0.3, 0.2, 0.5])
    wrong_on_0 = np.array([unsure if t == 0 else sure[t] for t in truth])
    right = np.array([sure[t] for t in truth])

    def views(*each: np.ndarray) -> np.ndarray:  # [M, V, T]: the view's types, then its turns' in TURNS order
        return np.stack(each, axis=1)

    by_mirrors = _typed({"classifier": wrong_on_0}, truth, views(wrong_on_0, *[right] * 7))
    typing, n, why = choose_typing(by_mirrors)
    assert (typing, n) == ("classifier", 4) and "classifier over mirrors 1.000" in why  # 8 ties it: not taken
    assert "classifier over turns and mirrors 1.000" in why
    assert by_mirrors.types_for("classifier", 4).argmax(1).tolist() == truth.tolist()
    by_turns = views(*[wrong_on_0] * 4, *[right] * 4)  # the mirrors repeat the view's mistake, the turns not
    assert choose_typing(_typed({"classifier": wrong_on_0}, truth, by_turns))[:2] == ("classifier", 8)
    assert choose_typing(_typed({"classifier": wrong_on_0}, truth, by_turns[:, :4]))[:2] == ("classifier", 1)
    same = views(*[wrong_on_0 * 0.9 + 0.1 / 3] * 8)
    assert choose_typing(_typed({"classifier": wrong_on_0}, truth, same))[:2] == ("classifier", 1)  # a tie: 1 view
    assert choose_typing(_typed({"classifier": wrong_on_0}, truth))[:2] == ("classifier", 1)  # none collected
    with pytest.raises(ValueError, match="collect them"):
        _typed({"classifier": wrong_on_0}, truth, by_turns[:, :4]).types_for("classifier", 8)


def test_the_decision_names_the_good_parts_its_reject_threshold_stands_on():
    # 500 good calibration images of 100 tiles (5 lightings each); one tile carries a mark and
    # scores high in every lighting. The promise counts tiles, and with 100 of them the 1 %
    # threshold is the largest score: the marked tile sets it, and every defect below it passes
    good = np.r_[np.linspace(0.0, 1.0, 495), [3.0, 3.1, 3.2, 3.3, 3.4]]
    tiles = [f"tile{i // 5:02d}" for i in range(495)] + ["tile_marked"] * 5
    calib = _split({"anomaly": good}, 500, tiles)
    val_scores = np.r_[np.linspace(0.0, 1.0, 100), np.linspace(1.5, 2.9, 10), np.full(10, 5.0)]
    val = _split({"anomaly": val_scores}, 100, [f"g{i}" for i in range(100)] + [f"d{i}" for i in range(20)])
    decision = fit_decision(val, calib, False, 0.01, 0.05)
    scaled = combine(calib.scores, decision.parts, decision.pooling)  # the decision's scale
    basis, th = decision.basis, decision.thresholds
    assert (th.guaranteed, th.n_good, th.n_parts) == (True, 500, 100)
    assert decision.calibrated_on == "500 good images of 100 parts of the calibration split"
    assert [p.image for p in basis.set_by] == ["/val/499.png"] and basis.set_by[0].part == "tile_marked"
    assert th.reject == scaled[499] and basis.set_by[0].score == scaled[499]
    # if a review finds the marked tile defective, the threshold comes from the other 99 tiles
    assert basis.reject_without == conformal_quantile(scaled[:495], 0.01, np.array(tiles[:495]))[0] == scaled[494]
    assert basis.val_escape == 0.5 and basis.val_escape_without == 0.0  # val's 10 middling defects would be caught


def test_a_promise_is_not_made_on_too_few_tiles_however_many_their_images():
    good = np.linspace(0.0, 1.0, 300)  # 300 images would promise 1 %; 50 tiles of 6 lightings cannot
    calib = _split({"anomaly": good}, 300, [f"tile{i // 6:02d}" for i in range(300)])
    decision = fit_decision(None, calib, False, 0.01, 0.05)
    th = decision.thresholds
    assert not th.guaranteed and th.n_parts == 50
    assert th.reject == combine(calib.scores, decision.parts, decision.pooling).max()


def test_without_a_promise_the_basis_names_the_largest_score_and_no_lower_threshold():
    calib = _split({"anomaly": np.linspace(0, 1, 20)}, 20, [f"c{i}" for i in range(20)])  # 20 < 1/alpha - 1
    decision = fit_decision(None, calib, False, 0.01, 0.05)
    assert not decision.thresholds.guaranteed
    assert [p.image for p in decision.basis.set_by] == ["/val/19.png"] and decision.basis.reject_without is None


def test_a_products_own_pooling_reaches_its_decision(synthetic_root, home, monkeypatch):
    """Val's handful of defect parts cannot tell max from mean on magnetic-tile; a cross-validation
    over train and val can, and the engineer names the product's pooling from it."""
    from inspector import training
    from inspector.settings import Settings

    monkeypatch.setenv("INSPECTOR_VERDICT__POOLING_BY_PRODUCT", '{"washer": "mean"}')
    s = Settings(home=home)
    assert (s.verdict.pooling_of("washer"), s.verdict.pooling_of("tile")) == ("mean", "auto")
    s.train.epochs, s.train.views = 3, 1
    decision = training.train_model(s, [synthetic_root], None, progress=False).products["washer"].decision
    assert len(decision.parts) > 1  # one deciding score has nothing to pool
    assert decision.pooling == "mean" and "pooled by their mean (fixed)" in decision.selected_on
    monkeypatch.setenv("INSPECTOR_VERDICT__POOLING_BY_PRODUCT", '{"washer": "median"}')
    with pytest.raises(ValueError, match="pooling_by_product"):
        Settings(home=home)
