import numpy as np
import pytest

from models.metrics import balanced_accuracy, escape_interval, paired_difference


def test_balanced_accuracy_weighs_both_classes():
    truth = np.array([True] * 2 + [False] * 8)
    assert balanced_accuracy(truth, np.zeros(10, bool)) == 0.5  # passing everything: all good parts right
    assert balanced_accuracy(truth, truth) == 1.0


def test_paired_interval_follows_the_discordant_parts():
    truth = np.array([True] * 20 + [False] * 80)
    a = truth.copy()
    b = truth.copy()
    b[:1] = False  # one defect missed by b only
    diff, low, high = paired_difference(truth, a, b)
    assert diff == pytest.approx(-0.025) and low < 0 and high == 0  # one part: the interval reaches no change
    b[:8] = False  # eight missed
    diff, low, high = paired_difference(truth, a, b)
    assert diff == pytest.approx(-0.2) and high < 0  # clearly worse
    same = paired_difference(truth, a, a.copy())
    assert same == (0.0, 0.0, 0.0)  # identical decisions: no uncertainty at all


def test_the_escape_interval_counts_parts_not_images():
    # 60 defect images that escape on 2 of 6 parts: as 60 separate parts the rate is well pinned,
    # as six tiles photographed ten times each it could as well be 0 % or 70 %
    escaped = np.r_[np.ones(20), np.zeros(40)].astype(bool)
    lo_images, hi_images = escape_interval(escaped, np.arange(60))
    lo_tiles, hi_tiles = escape_interval(escaped, np.repeat(np.arange(6), 10))
    assert lo_images < 1 / 3 < hi_images and hi_images - lo_images < 0.3
    assert lo_tiles <= 0.01 and hi_tiles >= 0.65
    assert escape_interval(np.zeros(8, bool), np.arange(8)) == (0.0, 0.0)
