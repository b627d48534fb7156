import numpy as np
import pytest

from models.metrics import balanced_accuracy, paired_difference


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
