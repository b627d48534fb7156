"""Drift statistics: numbers in, numbers out, no I/O.

- embeddings: maximum mean discrepancy (RBF kernel) with a permutation test -> p-value;
- scalar image statistics and category mixes: population stability index (PSI);
- rates: a Bernoulli CUSUM that accumulates evidence of a rise, with a simulated p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import chi2

IMAGE_STATS = ("brightness", "contrast", "sharpness")
_EPS = 1e-4


def image_statistics(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, S, S] in [0, 1] (resized, not normalised) -> [B, 3]: brightness, contrast, sharpness.

    Sharpness is the variance of the Laplacian, the usual focus measure: it falls when a lens
    gets dirty or out of focus. All three are taken at the model's input size, so they compare
    across cameras of different resolution.
    """
    gray = x.float().mean(1)  # [B, S, S]
    # the 4-neighbour Laplacian by shifted slices: 3x faster on a CPU than a one-channel conv2d
    lap = gray[:, :-2, 1:-1] + gray[:, 2:, 1:-1] + gray[:, 1:-1, :-2] + gray[:, 1:-1, 2:] - 4 * gray[:, 1:-1, 1:-1]
    flat = gray.flatten(1)
    return torch.stack([flat.mean(1), flat.std(1), lap.flatten(1).var(1)], dim=1)


@dataclass(frozen=True)
class Projection:
    """PCA of reference embeddings: production embeddings are stored in these few dimensions."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [k, D]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) @ self.components.T).astype(np.float32)


def fit_projection(x: np.ndarray, dim: int = 32) -> Projection:
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return Projection(mean.astype(np.float32), vt[: min(dim, len(vt))].astype(np.float32))


def mmd_test(ref: np.ndarray, cur: np.ndarray, permutations: int = 500, seed: int = 0) -> tuple[float, float]:
    """Squared MMD between two samples and its permutation p-value.

    RBF kernel with the median pairwise distance as bandwidth. The (biased) statistic of every
    permutation is s^T K s with s = +1/n for one side, -1/m for the other, computed for all
    permutations in one matrix product.
    """
    x = np.concatenate([ref, cur]).astype(np.float64)
    n, total = len(ref), len(ref) + len(cur)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    bandwidth = np.median(d2[np.triu_indices(total, 1)]) or 1.0
    k = np.exp(-d2 / bandwidth)
    sign = np.r_[np.full(n, 1.0 / n), np.full(total - n, -1.0 / (total - n))]
    observed = float(sign @ k @ sign)
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(sign) for _ in range(permutations)])
    null = ((perms @ k) * perms).sum(1)
    p = (1 + int((null >= observed).sum())) / (1 + permutations)
    return observed, p


def psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> tuple[float, float]:
    """Population stability index of a scalar with bins at the reference's quantiles, and its p-value.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift. Small windows
    get fewer bins (about 10 values a bin); see ``psi_of_counts`` for the rest.
    """
    ref, cur = np.asarray(ref, np.float64), np.asarray(cur, np.float64)
    bins = int(np.clip(len(cur) // 10, 3, bins))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    if len(edges) < 2:  # (nearly) constant reference, e.g. one camera resolution: below / at / above it
        v = float(np.median(ref))
        edges = np.array([v, np.nextafter(v, np.inf)])
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    return psi_of_counts(r, c)


def psi_of_counts(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """PSI of two count vectors over the same categories, less what sampling noise alone gives,
    and the p-value of a shift that large.

    PSI is the symmetric Kullback-Leibler (Jeffreys) divergence, so nm/(n+m) * PSI is close to
    chi-square with k - 1 degrees of freedom when both samples come from one distribution: that
    gives the p-value, and its mean, (k - 1)(1/n + 1/m), is subtracted from the reported PSI so
    a small window is not an alarm by itself. Counts are smoothed by half a count per category
    (an empty bin would otherwise add ~0.7).
    """
    r = np.asarray(ref, np.float64) + 0.5
    c = np.asarray(cur, np.float64) + 0.5
    n, m, k = r.sum(), c.sum(), len(r)
    r, c = r / n, c / m
    raw = float(((c - r) * np.log(c / r)).sum())
    p = float(chi2.sf(raw * n * m / (n + m), max(k - 1, 1)))
    return max(0.0, raw - (k - 1) * (1 / n + 1 / m)), p


def bernoulli_cusum(events: np.ndarray, p0: float, p1: float) -> float:
    """Largest one-sided CUSUM statistic for a rise of an event rate from ``p0`` to ``p1``.

    Each event adds log(p1/p0), each non-event log((1-p1)/(1-p0)); the sum restarts at zero
    when it goes negative.
    """
    return float(_cusum_max(np.asarray(events, bool)[None], np.array([p0]), np.array([p1]))[0])


def _cusum_max(events: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    """Row-wise ``bernoulli_cusum``: events [S, n], rates [S] -> [S]."""
    p0 = np.clip(p0, _EPS, 1 - _EPS)
    p1 = np.clip(np.maximum(p1, p0 + _EPS), _EPS, 1 - _EPS)
    up, down = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))
    s, best = np.zeros(len(p0)), np.zeros(len(p0))
    for t in range(events.shape[1]):
        s = np.maximum(0.0, s + np.where(events[:, t], up, down))
        best = np.maximum(best, s)
    return best


def rate_rise_test(
    events: np.ndarray, baseline_events: int, baseline_n: int, sims: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Has the event rate of ``events`` (in time order) risen above the baseline's? -> (CUSUM, p).

    The rise worth an alarm is a doubling, at least two points. A fixed alarm level on the
    CUSUM would promise nothing: its spread on an unchanged line grows with the rate and the
    window (at a 20 % defect rate, h = 5 is crossed by 7 % of unchanged 200-part windows).
    So the p-value is simulated: the share of unchanged windows of the same length, each
    judged against its own simulated baseline of ``baseline_n`` parts (the baseline rate is an
    estimate too), whose CUSUM reaches the observed one.
    """
    events = np.asarray(events, bool)
    rate = (baseline_events + 0.5) / (baseline_n + 1)  # never 0: a defect-free baseline is no proof of p = 0

    def rise(p0):
        return np.maximum(2 * p0, p0 + 0.02)

    stat = bernoulli_cusum(events, rate, float(rise(rate)))
    rng = np.random.default_rng(seed)
    p0 = (rng.binomial(baseline_n, rate, sims) + 0.5) / (baseline_n + 1)
    null = _cusum_max(rng.random((sims, len(events))) < rate, p0, rise(p0))
    return stat, float((1 + np.sum(null >= stat - 1e-12)) / (sims + 1))
