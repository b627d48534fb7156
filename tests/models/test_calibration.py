import numpy as np
import torch
import torch.nn.functional as F

from models.calibration import (
    Thresholds,
    calibrate_thresholds,
    conformal_quantile,
    fit_temperature,
    frr_bound,
    frr_chance,
    good_shift_p,
)
from models.losses import masked_cross_entropy
from models.metrics import expected_calibration_error


def test_conformal_threshold_holds_the_false_reject_target_on_fresh_good_parts():
    from scipy.stats import beta

    rng = np.random.default_rng(0)
    rates = []
    for _ in range(2000):
        t, guaranteed = conformal_quantile(rng.beta(2, 8, 500), 0.01)
        assert guaranteed
        rates.append(beta.sf(t, 2, 8))  # exact FRR of this threshold on the good-part distribution
    # marginal guarantee E[FRR] <= alpha; 3 standard errors of Monte Carlo slack
    assert np.mean(rates) <= 0.01 + 3 * np.std(rates) / np.sqrt(len(rates))
    assert np.mean(rates) > 0.008  # and not wastefully conservative


def _tiles(rng, n_tiles: int, lightings: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Good tiles' scores: each tile its own look, its lightings close to it (as magnetic-tile's)."""
    look = np.repeat(rng.normal(size=n_tiles), lightings)
    return look + 0.2 * rng.normal(size=n_tiles * lightings), np.repeat(np.arange(n_tiles), lightings)


def test_a_promise_counts_physical_parts_not_images():
    scores, tiles = _tiles(np.random.default_rng(0), 36)
    assert conformal_quantile(scores, 0.01)[1]  # 216 images would promise 1 % ...
    th = calibrate_thresholds(scores, 0.01, 0.05, parts=tiles)
    assert not th.guaranteed and th.reject == scores.max()  # ... 36 tiles cannot: 99 are needed
    assert (th.n_good, th.n_parts, th.parts) == (216, 36, 36)
    scores, tiles = _tiles(np.random.default_rng(0), 99)
    assert calibrate_thresholds(scores, 0.01, 0.05, parts=tiles).guaranteed is True


def test_a_threshold_over_a_parts_images_keeps_its_promise_on_new_parts():
    rng = np.random.default_rng(1)
    by_image, by_part = [], []
    for _ in range(400):
        scores, tiles = _tiles(rng, 40)
        fresh = rng.normal(size=300) + 0.2 * rng.normal(size=300)  # one image of each of 300 new tiles
        by_image.append((fresh > conformal_quantile(scores, 0.05)[0]).mean())
        t, guaranteed = conformal_quantile(scores, 0.05, tiles)
        assert guaranteed
        by_part.append((fresh > t).mean())
    assert np.mean(by_image) > 0.054  # counting 240 images breaks a 5 % promise made on 40 tiles
    assert np.mean(by_part) <= 0.05


def test_each_image_its_own_part_gives_the_usual_conformal_threshold():
    rng = np.random.default_rng(2)
    for n in (5, 98, 99, 200, 437):
        s = np.round(rng.normal(size=n), 1)  # ties too
        for alpha in (0.01, 0.05, 0.1):
            assert conformal_quantile(s, alpha, np.arange(n)) == conformal_quantile(s, alpha)
            weighted = conformal_quantile(np.r_[s, s], alpha, np.r_[np.arange(n), np.arange(n)])
            assert weighted == conformal_quantile(s, alpha)  # two identical images of a part: one part


def test_frr_chance_is_how_often_fresh_good_parts_reject_that_many():
    # 200 calibration parts and 86 test parts, as the demo's mono cells: simulate the whole draw
    rng = np.random.default_rng(1)
    counts = []
    for _ in range(4000):
        t, _ = conformal_quantile(rng.normal(size=200), 0.01)
        counts.append(int((rng.normal(size=86) > t).sum()))
    counts = np.array(counts)
    for r in (1, 3, 4, 6):
        assert abs(frr_chance(200, 86, 0.01, r) - (counts >= r).mean()) < 0.015
    assert frr_chance(200, 86, 0.01, 0) == 1.0
    # past the 95 % bound the count is rare by construction
    over = round(frr_bound(200, 86, 0.01) * 86) + 1
    assert frr_chance(200, 86, 0.01, over) <= 0.05
    assert frr_chance(20, 86, 0.01, 3) is None  # too few parts: no promise, no odds


def test_good_shift_p_tells_changed_parts_from_a_few_odd_ones():
    rng = np.random.default_rng(2)
    calibration = rng.normal(size=200)
    alike = rng.normal(size=86)
    alike[:4] = 6.0  # four odd parts far out in the tail: rejected, but the bulk did not move
    assert good_shift_p(calibration, alike) > 0.05
    assert good_shift_p(calibration, rng.normal(0.5, 1, 86)) < 0.01  # the whole line drifted up
    assert good_shift_p(calibration, rng.normal(-0.5, 1, 86)) > 0.5  # drifting down breaks no promise
    assert good_shift_p(calibration, alike[:3]) is None


def test_good_shift_p_counts_a_tiles_lightings_once():
    # 60 calibration tiles and 5 new ones, six and thirty images each, all from one population of
    # tiles: the five happen to sit a little high, which their 150 images alone would call a shift
    rng = np.random.default_rng(3)
    calibration = np.repeat(rng.normal(size=60), 6) + rng.normal(0, 0.1, 360)
    new = np.repeat([0.3, 0.5, 0.1, 0.8, -0.2], 30) + rng.normal(0, 0.1, 150)
    tiles, new_tiles = np.repeat(np.arange(60), 6), np.repeat(np.arange(5), 30)
    assert good_shift_p(calibration, new) < 0.001
    assert good_shift_p(calibration, new, tiles, new_tiles) > 0.1
    assert good_shift_p(calibration, new + 3, tiles, new_tiles) < 0.01  # a real shift still shows


def test_too_few_good_parts_is_flagged_not_hidden():
    th = calibrate_thresholds(np.array([0.1, 0.2, 0.3]), target_frr=0.01)
    assert not th.guaranteed and th.reject == 0.3 and th.n_good == 3
    assert th.verdict(0.05) == "accept" and th.verdict(0.31) == "reject"


def test_temperature_scaling_recovers_a_known_temperature():
    torch.manual_seed(0)
    true_logits = torch.randn(4000, 5) * 2
    target = torch.distributions.Categorical(logits=true_logits).sample()
    t = fit_temperature(true_logits * 3, target)  # over-confident by 3x
    assert abs(t - 3) < 0.3


def test_masked_cross_entropy_matches_torch_and_ignores_padding():
    logits, target = torch.randn(8, 4), torch.randint(0, 3, (8,))
    torch.testing.assert_close(masked_cross_entropy(logits, target), F.cross_entropy(logits, target))
    padded = torch.cat([logits, torch.full((8, 2), float("-inf"))], 1)
    torch.testing.assert_close(
        masked_cross_entropy(padded, target, 0.1), F.cross_entropy(logits, target, label_smoothing=0.1)
    )


def test_ece_is_zero_when_confidence_matches_accuracy():
    conf = np.full(1000, 0.7)
    correct = np.arange(1000) % 10 < 7
    assert expected_calibration_error(conf, correct) < 1e-9


def test_the_bands_speak_the_stores_words():
    """One vocabulary for the line's decision: the bands' words are the store's verdicts (+ error)."""
    from inspector.store.inspections import VERDICTS

    th = Thresholds(warn=0.2, reject=0.6, target_frr=0.01, n_good=200, guaranteed=True)
    assert [th.verdict(s) for s in (0.1, 0.4, 0.9)] == ["accept", "review", "reject"]
    assert {"accept", "review", "reject", "error"} == set(VERDICTS)


def test_p_defect_does_not_take_the_val_splits_defect_share_for_the_lines():
    """pcb's val is 85 % defects: a curve fitted to that share called parts in the accept band
    likely defective (the API answered 'accept, confidence 0.20'). The curve now weighs good and
    defect parts equally, so a val split that is mostly defects or mostly good says the same."""
    from models.decision import fit_platt, probability

    rng = np.random.default_rng(0)

    def p_at(score: float, n_good: int, n_bad: int) -> float:
        good, bad = rng.normal(0, 1, n_good), rng.normal(3, 1, n_bad)
        platt = fit_platt(np.concatenate([good, bad]), np.r_[np.zeros(n_good), np.ones(n_bad)].astype(bool))
        return float(probability(np.array([score]), platt, 2.3, 1.6)[0])

    mostly_defects, mostly_good = p_at(1.0, 300, 1700), p_at(1.0, 1700, 300)
    assert abs(mostly_defects - mostly_good) < 0.1
    assert mostly_defects < 0.3  # a part at the good parts' 84th percentile is likely good
