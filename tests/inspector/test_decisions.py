"""Choosing a product's deciding parts on val: the criterion looks at the low false-reject
range, not at the single good part that sets the 1 % quantile."""

import numpy as np

from models.decision import escape_at_quantile, low_frr_escape


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
