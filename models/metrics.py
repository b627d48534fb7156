"""Evaluation metrics for one product's predictions (numpy in, plain dicts out)."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0, 1, bins + 1)
    ece, n = 0.0, len(confidence)
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.sum() / n * abs(correct[inside].mean() - confidence[inside].mean())
    return float(ece)


def product_metrics(
    classes: list[str],
    true: np.ndarray,
    probs: np.ndarray,
    score: np.ndarray,
    reject_threshold: float,
    warn_threshold: float,
    target_frr: float,
) -> dict:
    """Metrics of one product.

    Args:
        classes: the product's classes, ``ok`` first.
        true: [M] true class index into ``classes``.
        probs: [M, C] calibrated class probabilities.
        score: [M] defect score (higher = more likely defective).
        reject_threshold / warn_threshold: the val-calibrated verdict bands.
        target_frr: the false-reject rate promised on good parts.
    """
    pred = probs.argmax(1)
    seen = sorted(set(true.tolist()))
    defect = true != 0
    out: dict = {
        "n": len(true),
        "accuracy": float((pred == true).mean()),
        "macro_f1": float(f1_score(true, pred, labels=seen, average="macro", zero_division=0)),
        "per_class_recall": {classes[c]: float((pred[true == c] == c).mean()) for c in seen},
        "confusion": {
            "labels": list(classes),
            "matrix": confusion_matrix(true, pred, labels=list(range(len(classes)))).tolist(),
        },
        "ece": expected_calibration_error(probs.max(1), pred == true),
    }
    if defect.any() and (~defect).any():
        out["auroc"] = float(roc_auc_score(defect, score))
    if defect.any():
        out["escape_rate"] = float((score[defect] <= reject_threshold).mean())  # defects not rejected
        out["escape_to_accept_rate"] = float((score[defect] <= warn_threshold).mean())  # not even sent to review
        out["defect_type_macro_f1"] = float(
            f1_score(
                true[defect], pred[defect], labels=sorted(set(true[defect].tolist())), average="macro", zero_division=0
            )
        )
    if (~defect).any():
        out["false_reject_rate"] = float((score[~defect] > reject_threshold).mean())
        out["warn_rate_good"] = float(((score[~defect] > warn_threshold) & (score[~defect] <= reject_threshold)).mean())
        out["target_frr"] = target_frr
    return out


def balanced_accuracy(truth: np.ndarray, flagged: np.ndarray) -> float:
    """Mean of the recall of each class present: defects flagged, good parts passed."""
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    return float(np.mean([(flagged[truth == t] == t).mean() for t in (False, True) if (truth == t).any()]))


def paired_difference(
    truth: np.ndarray, a: np.ndarray, b: np.ndarray, sims: int = 2000, level: float = 0.90, seed: int = 0
) -> tuple[float, float, float]:
    """Balanced accuracy of decisions ``b`` minus that of ``a`` on the same parts, with a paired
    bootstrap interval (parts resampled within each class, both models together). -> (diff, low, high).

    Paired, because both models judged the very same parts: a part both get wrong says nothing
    about which is better, and the interval shrinks to what the discordant parts support.
    """
    truth, a, b = (np.asarray(x, bool) for x in (truth, a, b))
    diff = balanced_accuracy(truth, b) - balanced_accuracy(truth, a)
    rng = np.random.default_rng(seed)
    recall_diffs = []
    for t in (False, True):
        idx = np.flatnonzero(truth == t)
        if len(idx) == 0:
            continue
        picks = idx[rng.integers(0, len(idx), (sims, len(idx)))]  # [sims, n_t]
        recall_diffs.append((b[picks] == t).mean(1) - (a[picks] == t).mean(1))
    boot = np.mean(recall_diffs, axis=0)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return diff, float(low), float(high)


def escape_interval(
    escaped: np.ndarray, parts: np.ndarray, level: float = 0.95, draws: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap interval of the escape rate, drawing the defective physical parts, not images.

    ``escaped`` [M]: each defect image passed; ``parts`` [M]: the part it shows. A tile's six
    lightings are one piece of evidence, so a split with 2-3 tiles per defect type says much
    less than its image count suggests: this interval says how much. The threshold is held
    fixed (the calibration's), so it covers which defects the test split happened to hold.
    """
    escaped = np.asarray(escaped, np.float64)
    if len(escaped) == 0:
        return float("nan"), float("nan")
    _, part = np.unique(np.asarray(parts), return_inverse=True)
    images = np.bincount(part).astype(np.float64)
    passed = np.bincount(part, weights=escaped)
    drawn = np.random.default_rng(seed).integers(0, len(images), size=(draws, len(images)))
    rates = passed[drawn].sum(1) / images[drawn].sum(1)
    tail = (1 - level) / 2
    return float(np.quantile(rates, tail)), float(np.quantile(rates, 1 - tail))
