"""Turning scores into verdicts a quality engineer can trust.

- Temperature scaling makes probabilities honest (fitted on val, never on test).
- A split-conformal quantile of good-part scores sets the reject threshold so that the
  false-reject rate on good parts stays at or below a target, with no defect images needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.losses import masked_cross_entropy


def fit_temperature(logits: torch.Tensor, target: torch.Tensor, binary: bool = False) -> float:
    """Temperature T > 0 minimising NLL of logits / T on held-out data."""
    if logits.numel() == 0:
        return 1.0
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)
    logits, target = logits.detach().float().clone(), target.detach().clone()  # may come from inference mode

    def nll() -> torch.Tensor:
        opt.zero_grad()
        scaled = logits / log_t.exp()
        loss = (
            F.binary_cross_entropy_with_logits(scaled, target.float())
            if binary
            else masked_cross_entropy(scaled, target)
        )
        loss.backward()
        return loss

    opt.step(nll)
    t = float(log_t.detach().exp())
    return min(max(t, 0.05), 20.0) if math.isfinite(t) else 1.0


def defect_score(class_logits: torch.Tensor, class_temperature: float | torch.Tensor = 1.0) -> torch.Tensor:
    """P(not ok) from class logits [B, C] whose class 0 is ``ok`` -> [B]."""
    return 1 - torch.softmax(class_logits.float() / class_temperature, dim=-1)[:, 0]


@dataclass
class Thresholds:
    """Verdict bands on the defect score: accept up to ``warn``, review up to ``reject``, reject above.

    The three words are the line's one vocabulary: CLI, API, MQTT, store and dashboard use them.
    """

    warn: float
    reject: float
    target_frr: float
    n_good: int  # good calibration images
    guaranteed: bool  # False when too few good parts were seen to promise target_frr
    n_parts: int | None = None  # the physical parts they show (None: each image its own part)

    @property
    def parts(self) -> int:
        """Good calibration parts the promise counts: the laws of ``frr_bound`` take these."""
        return self.n_good if self.n_parts is None else self.n_parts

    def verdict(self, score: float) -> str:
        if score > self.reject:
            return "reject"
        return "review" if score > self.warn else "accept"

    def to_dict(self) -> dict:
        return asdict(self)


def conformal_quantile(good_scores: np.ndarray, alpha: float, parts: np.ndarray | None = None) -> tuple[float, bool]:
    """Threshold t with P(score of a new good part > t) <= alpha (split conformal).

    Needs n >= 1/alpha - 1 good parts; with fewer it returns the largest score and says so.
    ``parts`` names the physical part of each score. Images of one part (a tile's six lightings)
    are not exchangeable with each other, only whole parts are, so each image then weighs 1 / its
    part's images and the new part weighs 1: t is the smallest score with
    (weight above t + 1) / (parts + 1) <= alpha, which holds the promise for a new part's images
    (the usual argument: the n + 1 parts' total weight above t is symmetric, and the new part's
    is at most 1). Counting the images instead, 240 images of 40 tiles of six lightings promise
    5 % and reject 5.7 % of new tiles' images (tests/models/test_calibration.py).
    """
    s = np.asarray(good_scores, dtype=np.float64)
    if len(s) == 0:
        return 0.5, False
    weight, n_parts = part_weights(parts) if parts is not None else (None, len(s))
    if n_parts == len(s):  # each image its own part: the usual quantile, to the bit
        s = np.sort(s)
        k = math.ceil((n_parts + 1) * (1 - alpha))
        return (float(s[k - 1]), True) if k <= n_parts else (float(s[-1]), False)
    order = np.argsort(s, kind="stable")
    s, weight = s[order], weight[order]  # type: ignore[index]
    above = np.append(np.cumsum(weight[::-1])[::-1], 0.0)[np.searchsorted(s, s, side="right")]
    feasible = above + 1 <= alpha * (n_parts + 1) + 1e-9
    return (float(s[np.argmax(feasible)]), True) if feasible.any() else (float(s[-1]), False)


def part_weights(parts: np.ndarray) -> tuple[np.ndarray, int]:
    """(each image's weight, 1 / its part's images; how many parts): a part's images weigh one part."""
    _, part, size = np.unique(np.asarray(parts), return_inverse=True, return_counts=True)
    return 1.0 / size[part], len(size)


def parts_needed(alpha: float) -> int:
    """Good calibration parts a promise of ``alpha`` needs: 1/alpha - 1 (99 at 1 %)."""
    return math.ceil(1 / alpha - 1 - 1e-9)


def smallest_promise(n_parts: int) -> float:
    """The lowest false-reject rate ``n_parts`` good calibration parts can promise, rounded up
    to a tenth of a percent: 1 / (n_parts + 1) (56 tiles: 1.8 %)."""
    return math.ceil(1000 / (n_parts + 1) - 1e-9) / 1000


def calibrate_thresholds(
    good_scores: np.ndarray, target_frr: float = 0.01, warn_frr: float = 0.05, parts: np.ndarray | None = None
) -> Thresholds:
    """Verdict bands from good calibration scores; ``parts``: the physical part of each (see
    ``conformal_quantile``)."""
    reject, guaranteed = conformal_quantile(good_scores, target_frr, parts)
    warn, _ = conformal_quantile(good_scores, max(warn_frr, target_frr), parts)
    n_parts = None if parts is None else part_weights(parts)[1]
    return Thresholds(min(warn, reject), reject, target_frr, len(good_scores), guaranteed, n_parts)


def threshold_setters(good_scores: np.ndarray, reject: float, most: int = 5) -> np.ndarray:
    """Indices of the good calibration scores at or above ``reject``, highest first (at most
    ``most``): the parts the conformal quantile stands on. With a few hundred parts the 1 %
    threshold is the second or third largest score, so one odd good part sets it; an engineer
    who sees which ones can judge whether they are good at all."""
    s = np.asarray(good_scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    return order[s[order] >= reject][:most]


def reject_without(good_scores: np.ndarray, units: np.ndarray, drop: set[str], alpha: float) -> float | None:
    """The reject threshold if the physical parts in ``drop`` were not good (a review found them
    defective): the conformal quantile of the rest; None when too few good parts remain to promise."""
    units = np.asarray(units)
    keep = np.array([u not in drop for u in units], dtype=bool)
    threshold, guaranteed = conformal_quantile(np.asarray(good_scores, dtype=np.float64)[keep], alpha, units[keep])
    return threshold if guaranteed else None


def frr_bound(n_calibration: int, n_test: int, alpha: float, level: float = 0.95) -> float | None:
    """The false-reject rate that ``n_test`` new good parts stay under with probability ``level``
    when the threshold is the conformal quantile of ``n_calibration`` good scores.

    The conformal threshold's true FRR is Beta(n + 1 - k, k) with k = ceil((n + 1)(1 - alpha));
    the count of rejects among n_test good parts is then Beta-Binomial. A measured FRR above
    this bound says the promise broke (or the parts changed), not bad luck. None when n is too
    small for any promise.
    """
    law = _rejects_law(n_calibration, n_test, alpha)
    return None if law is None else float(law.ppf(level)) / n_test


def frr_chance(n_calibration: int, n_test: int, alpha: float, rejected: int) -> float | None:
    """How often chance alone rejects ``rejected`` or more of ``n_test`` new good parts under the
    conformal threshold of ``n_calibration`` good scores (the Beta-Binomial of ``frr_bound``).

    A measured FRR above the bound is a 1-in-20 event by construction; this says how rare the
    count actually seen is, so a quality engineer can weigh it. None when no promise is made.
    """
    law = _rejects_law(n_calibration, n_test, alpha)
    return None if law is None else float(law.sf(rejected - 1))


def _rejects_law(n_calibration: int, n_test: int, alpha: float):
    """The Beta-Binomial count of rejects among ``n_test`` new good parts; None without a promise."""
    from scipy.stats import betabinom

    k = math.ceil((n_calibration + 1) * (1 - alpha))
    if k > n_calibration or n_test <= 0:
        return None
    return betabinom(n_test, n_calibration + 1 - k, k)


def good_shift_p(
    calibration_good: np.ndarray,
    new_good: np.ndarray,
    calibration_parts: np.ndarray | None = None,
    new_parts: np.ndarray | None = None,
) -> float | None:
    """One-sided p-value that new good parts score higher than the calibration's good parts
    (Mann-Whitney U on the defect scores). Small: the parts changed, and the promise with them;
    large while the FRR breaks its bound: a few odd parts broke it, not the bulk. With the
    physical part of each image, each part counts once (its median score): six lightings of
    one tile are one piece of evidence, and counting them six times makes any gap look sure.
    None with fewer than 5 parts on either side.
    """
    from scipy.stats import mannwhitneyu

    a = _per_part(np.asarray(new_good, np.float64), new_parts)
    b = _per_part(np.asarray(calibration_good, np.float64), calibration_parts)
    if len(a) < 5 or len(b) < 5:
        return None
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def _per_part(scores: np.ndarray, parts: np.ndarray | None) -> np.ndarray:
    if parts is None:
        return scores
    _, part = np.unique(np.asarray(parts), return_inverse=True)
    return np.array([np.median(scores[part == g]) for g in range(part.max() + 1)]) if len(part) else scores
