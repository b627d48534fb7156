import numpy as np
import torch

from models.drift import (
    bernoulli_cusum,
    fit_projection,
    image_statistics,
    mmd_test,
    psi,
    psi_of_counts,
    rate_rise_test,
)


def test_mmd_same_distribution_is_not_significant_and_a_shift_is():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 8))
    _, p_same = mmd_test(ref, rng.normal(size=(60, 8)), permutations=300)
    stat, p_shift = mmd_test(ref, rng.normal(0.6, 1, size=(60, 8)), permutations=300)
    assert p_same > 0.05
    assert p_shift < 0.01 and stat > 0


def test_mmd_false_alarm_rate_matches_the_level():
    """A valid permutation test: about 5 % of same-distribution windows fall under p = 0.05."""
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(150, 4))
    ps = [mmd_test(ref, rng.normal(size=(30, 4)), permutations=200, seed=i)[1] for i in range(60)]
    assert np.mean(np.array(ps) < 0.05) <= 0.15


def test_psi_is_near_zero_for_same_data_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=2000)
    same, p_same = psi(ref, rng.normal(size=200))
    shifted, p_shift = psi(ref, rng.normal(1.0, 1, size=200))
    assert same < 0.05 and p_same > 0.01
    assert shifted > 0.25 and p_shift < 1e-6


def test_psi_small_window_is_not_an_alarm_by_itself():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=500)
    ps = [psi(ref, rng.normal(size=20))[1] for _ in range(200)]
    assert np.mean(np.array(ps) < 0.01) < 0.03  # the p-value holds its level on small windows


def test_psi_sees_a_change_of_a_constant():
    """One camera resolution in the reference: a new resolution must still show."""
    ref = np.full(300, 1_000_000.0)
    assert psi(ref, np.full(50, 1_000_000.0))[0] == 0.0
    value, p = psi(ref, np.full(50, 2_000_000.0))
    assert value > 0.25 and p < 1e-6


def test_psi_of_counts_handles_empty_categories():
    assert psi_of_counts([90, 10, 0], [88, 12, 0])[0] < 0.05
    assert psi_of_counts([90, 10, 0], [50, 10, 40])[0] > 0.25


def test_cusum_stays_low_at_the_baseline_rate_and_rises_when_it_doubles():
    rng = np.random.default_rng(0)
    assert bernoulli_cusum(rng.random(200) < 0.05, 0.05, 0.10) < 5
    assert bernoulli_cusum(rng.random(200) < 0.20, 0.05, 0.10) > 5


def test_rate_rise_p_value_holds_its_false_alarm_rate_at_any_defect_rate():
    """A fixed CUSUM level alarms on half of unchanged windows at a 20 % defect rate; the
    simulated p-value keeps p <= 0.01 near 1 % of them, whatever the rate."""
    rng = np.random.default_rng(0)
    for rate in (0.0, 0.05, 0.2):
        warn = [rate_rise_test(rng.random(200) < rate, rng.binomial(2000, rate), 2000, seed=i)[1] <= 0.01
                for i in range(150)]  # fmt: skip
        assert sum(warn) <= 5, (rate, sum(warn))  # ~1.5 expected
    risen = [rate_rise_test(rng.random(200) < 0.2, rng.binomial(2000, 0.05), 2000, seed=i)[1] for i in range(20)]
    assert max(risen) <= 0.001  # four times the rate: high every time


def test_image_statistics_see_darkness_and_blur():
    rng = np.random.default_rng(0)
    sharp = torch.from_numpy(rng.random((1, 3, 64, 64))).float()
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2, count_include_pad=False)
    s, b = image_statistics(sharp)[0], image_statistics(blurred)[0]
    d = image_statistics(sharp * 0.7)[0]
    assert d[0] < s[0] * 0.75  # brightness
    assert b[2] < s[2] / 4  # sharpness (variance of the Laplacian)


def test_projection_keeps_the_main_directions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)) * np.r_[10, 5, np.ones(18) * 0.1]
    proj = fit_projection(x, 2)
    y = proj(x)
    assert y.shape == (300, 2)
    assert y.var(0).sum() > 0.95 * x.var(0).sum()
