"""One defect score per part from all the evidence, and the choices behind it.

Each part's raw score is put on a common scale fitted on good parts (centre = median, spread =
the 95th percentile's distance from it), and the defect score is the largest scaled score of
the deciding parts, or their mean. The choice of deciding parts, their pooling and the scales are
made on the validation split; the verdict thresholds are then set once on a calibration split
that chose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from models.card import PartScale

_EPS = 1e-6


def transform(score: np.ndarray, how: str) -> np.ndarray:
    s = np.asarray(score, dtype=np.float64)
    if how == "logit":
        p = np.clip(s, _EPS, 1 - _EPS)
        return np.log(p / (1 - p))
    return s


def fit_scale(good_scores: np.ndarray, how: str = "identity") -> PartScale:
    """A scale on which good parts sit near 0 and their 95th percentile at 1."""
    t = transform(good_scores, how)
    if len(t) == 0:
        return PartScale(transform=how)
    center = float(np.median(t))
    spread = float(np.quantile(t, 0.95) - center)
    if not spread > 0:  # all alike (or too few): fall back on any spread there is
        spread = float(np.std(t)) or 1.0
    return PartScale(transform=how, center=center, spread=spread)


def scaled(score: np.ndarray | float, s: PartScale) -> np.ndarray:
    return (transform(score, s.transform) - s.center) / s.spread


def combine(scores: Mapping[str, np.ndarray], parts: Mapping[str, PartScale], pooling: str = "max") -> np.ndarray:
    """The defect score [M]: the largest scaled score of the deciding ``parts``, or their mean.

    The largest lets any one part fail a part on its own; the mean lets parts that each see a
    defect a little add up, and their noise on good parts average out.
    """
    stacked = np.stack([scaled(scores[name], s) for name, s in parts.items()])
    return stacked.mean(axis=0) if pooling == "mean" else stacked.max(axis=0)


def type_probs(typing: str, by_part: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """P(type | defective) [..., T] as a decision's ``typing`` reads it from its parts': one part's,
    or for "both" the mean of the classifier's and the anomaly branch's, which err on different
    defects (the classifier reads the whole image against the manual, the region head the
    anomalous region). None when the part it names gave none."""
    if typing != "both":
        return by_part.get(typing)
    have = [by_part[k] for k in ("classifier", "anomaly") if by_part.get(k) is not None]
    if len(have) == 2 and have[0].shape != have[1].shape:  # not the same defect list: no mean to take
        return have[1]
    return np.mean(have, axis=0) if have else None


def escape_at_quantile(score: np.ndarray, is_defect: np.ndarray, frr: float) -> float:
    """Share of defects at or below the (1 - frr) quantile of the good parts' scores: the
    selection criterion, on the same split (the honest number comes from calibration + test)."""
    good, bad = score[~is_defect], score[is_defect]
    if len(good) == 0 or len(bad) == 0:
        return float("nan")
    cut = float(np.quantile(good, 1 - frr, method="higher"))
    return float((bad <= cut).mean())


def low_frr_escape(score: np.ndarray, is_defect: np.ndarray, target_frr: float, span: float = 10.0) -> float:
    """Mean val escape over false-reject rates from the target to ``span`` times it (at most 10 %):
    the criterion the deciding parts are chosen on (span 10) and anomaly views (span 3, on the
    several hundred parts their banks never saw).

    The escape at exactly the target rests on one extreme good score (the 99th percentile of
    ~100 val good parts is their second largest), so alone it ranks candidates by noise; the
    calibration split later sets the real threshold anyway. Averaging over the low-FRR range
    keeps the choice about the operating region without hanging it on one part.
    """
    grid = np.linspace(target_frr, min(span * target_frr, 0.1), 5)
    return float(np.mean([escape_at_quantile(score, is_defect, f) for f in grid]))


def auroc(score: np.ndarray, is_defect: np.ndarray) -> float:
    if is_defect.all() or not is_defect.any():
        return float("nan")
    return float(roc_auc_score(is_defect, score))


def fit_platt(score: np.ndarray, is_defect: np.ndarray) -> tuple[float, float] | None:
    """P(defect | score) as a logistic curve fitted on held-out parts; None without both kinds.

    Good and defect parts weigh equally, as if the line made them equally often: a val split that
    is 85 % defects (pcb) would otherwise call a part below the review threshold 80 % defective.
    """
    if is_defect.all() or not is_defect.any():
        return None
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=10.0, class_weight="balanced")
    lr.fit(np.asarray(score, np.float64).reshape(-1, 1), is_defect)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def probability(score: np.ndarray | float, platt: tuple[float, float] | None, reject: float, warn: float) -> np.ndarray:
    """P(defect) of a defect score: the fitted curve, else one through 0.5 at the reject threshold
    (a product calibrated on good parts only has no defects to fit a curve to)."""
    s = np.asarray(score, np.float64)
    if platt is not None:
        a, b = platt
    else:
        a = 4.0 / max(reject - warn, 1e-3)  # 0.5 at reject, ~0.12 at warn
        b = -a * reject
    return expit(a * s + b)


def win_rate(
    challenger: np.ndarray,
    incumbent: np.ndarray,
    is_defect: np.ndarray,
    groups: np.ndarray,
    target_frr: float,
    draws: int = 200,
    seed: int = 0,
    span: float = 10.0,
) -> float:
    """Share of bootstrap redraws of ``groups`` (physical parts, boards) in which ``challenger`` lets fewer
    defects through than ``incumbent`` (``low_frr_escape``, the same parts scored both ways).

    Parts, not images, are drawn, good and defective ones separately: a tile's lightings are
    one piece of evidence, and val holds few tiles per defect type, so a gap that three images
    of one tile open is not a finding.
    """
    _, part = np.unique(groups, return_inverse=True)
    bad_part = np.zeros(part.max() + 1, dtype=bool)
    np.logical_or.at(bad_part, part, is_defect)
    members = [np.flatnonzero(part == g) for g in range(len(bad_part))]
    strata = [np.flatnonzero(bad_part), np.flatnonzero(~bad_part)]
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(draws):
        drawn = np.concatenate([rng.choice(s, len(s)) for s in strata if len(s)])
        rows = np.concatenate([members[g] for g in drawn])
        d = is_defect[rows]
        if d.all() or not d.any():
            continue
        wins += low_frr_escape(challenger[rows], d, target_frr, span) < low_frr_escape(
            incumbent[rows], d, target_frr, span
        )
    return wins / draws
