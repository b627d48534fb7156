"""Drift checks: is production still what the champion was trained and calibrated for?

Per (product, line) stream of the champion's inspections, the newest ``window`` judged
inspections are compared with:
- the champion's reference good parts (image embeddings: MMD permutation test on accepted
  parts; brightness / contrast / sharpness: PSI over all judged parts), and
- the ``baseline`` inspections before the window (reject rate: Bernoulli CUSUM; defect-type
  mix: PSI; mean confidence; share of parts sent to review),
plus the share of recent operator reviews that disagree with the verdict, and the false-reject
promise itself, checked on the rejects the operators found good over the whole lookback, and
the escape rate, from the spot checks (accepted parts picked at random for review).

Every metric of every check is written as a drift_event with its value, threshold and a
severity (ok / warn / high), so the dashboard can draw each metric against its threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.stats import beta, binom
from sqlalchemy.orm import Session

from inspector.reference import Reference, load_reference
from inspector.settings import DriftSettings
from inspector.store.base import utcnow
from inspector.store.monitoring import (
    HeldOutEscape,
    LineReviews,
    champion,
    held_out_escape,
    line_reviews,
    monitored_streams,
    recent_judged,
    record_drift_events,
)
from inspector.store.promise import PromiseBasis, promise_basis
from inspector.store.queries import latest_reviews
from inspector.store.rows import DriftEventRow, JudgedPart, ReviewedPart
from models.calibration import frr_chance
from models.drift import IMAGE_STATS, mmd_test, psi, psi_of_counts, rate_rise_test

STATS = (*IMAGE_STATS, "pixels")  # pixels: a new camera or resolution changes what the model sees
MAX_REFERENCE = 300  # reference rows per MMD test: enough power, bounded cost


@dataclass
class Finding:
    metric: str
    value: float
    threshold: float  # the warn threshold; details carry the high one and the direction
    severity: str  # ok | warn | high
    details: dict


def grade(metric: str, value: float, warn: float, high: float, details: dict, lower_is_worse: bool = False) -> Finding:
    worse = (lambda a, b: a <= b) if lower_is_worse else (lambda a, b: a >= b)
    severity = "high" if worse(value, high) else "warn" if worse(value, warn) else "ok"
    details = {**details, "high": high, "alarm_when": "below" if lower_is_worse else "above"}
    return Finding(metric, float(value), warn, severity, details)


def grade_psi(metric: str, value_p: tuple[float, float], cfg: DriftSettings, details: dict) -> Finding:
    """A PSI grades as warn / high only when it is also significant (p below mmd_p_warn / _high):
    on a small window a large PSI can be chance alone."""
    value, p = value_p
    f = grade(metric, value, cfg.psi_warn, cfg.psi_high, {**details, "p": p})
    if p >= cfg.mmd_p_warn:
        f.severity = "ok"
    elif p >= cfg.mmd_p_high and f.severity == "high":
        f.severity = "warn"
    return f


def embedding_drift(ref: np.ndarray, cur: np.ndarray, cfg: DriftSettings, seed: int = 0) -> Finding:
    if len(ref) > MAX_REFERENCE:
        ref = ref[np.random.default_rng(seed).choice(len(ref), MAX_REFERENCE, replace=False)]
    stat, p = mmd_test(ref, cur, cfg.permutations, seed)
    return grade(
        "embedding_mmd", p, cfg.mmd_p_warn, cfg.mmd_p_high, {"mmd2": stat, "n_ref": len(ref), "n": len(cur)}, True
    )


def stat_drift(ref: np.ndarray, cur: np.ndarray, cfg: DriftSettings) -> list[Finding]:
    """PSI of each image statistic (columns of STATS; a reference without pixel counts skips that one)."""
    out = []
    for j, name in enumerate(STATS[: min(ref.shape[1], cur.shape[1])]):
        if name == "pixels" and not cfg.check_size:
            continue
        details = {"ref_mean": float(ref[:, j].mean()), "mean": float(cur[:, j].mean()), "n": len(cur)}
        out.append(grade_psi(f"psi_{name}", psi(ref[:, j], cur[:, j]), cfg, details))
    return out


def _category(row: JudgedPart) -> str:
    return (row.defect_type or "defect") if row.verdict == "reject" else row.verdict


def output_drift(window: list[JudgedPart], baseline: list[JudgedPart], cfg: DriftSettings) -> list[Finding]:
    """Reject rate, defect-type mix, confidence and review share of the window vs the baseline."""
    n, nb = len(window), len(baseline)
    is_defect = np.array([r.verdict == "reject" for r in window])
    k = sum(r.verdict == "reject" for r in baseline)
    cusum, p = rate_rise_test(is_defect, k, nb, cfg.permutations)
    out = [
        grade(
            "defect_rate_cusum",
            p,
            cfg.mmd_p_warn,
            cfg.mmd_p_high,
            {"cusum": cusum, "baseline_rate": k / nb, "rate": float(is_defect.mean()), "n": n, "n_baseline": nb},
            lower_is_worse=True,
        )
    ]
    cats = sorted({_category(r) for r in window + baseline})
    cw, cb = Counter(map(_category, window)), Counter(map(_category, baseline))
    out.append(
        grade_psi(
            "defect_type_psi",
            psi_of_counts([cb[c] for c in cats], [cw[c] for c in cats]),
            cfg,
            {"mix": {c: cw[c] / n for c in cats}, "baseline_mix": {c: cb[c] / nb for c in cats}},
        )
    )
    conf_w = [r.confidence for r in window if r.confidence is not None]
    conf_b = [r.confidence for r in baseline if r.confidence is not None]
    if conf_w and conf_b:
        drop = float(np.mean(conf_b) - np.mean(conf_w))
        out.append(
            grade(
                "confidence_drop",
                drop,
                cfg.confidence_drop_warn,
                cfg.confidence_drop_high,
                {"mean": float(np.mean(conf_w)), "baseline_mean": float(np.mean(conf_b))},
            )
        )
    share_w = cw["review"] / n
    share_b = cb["review"] / nb
    out.append(
        grade(
            "review_rise",
            share_w - share_b,
            cfg.review_rise_warn,
            cfg.review_rise_high,
            {"share": share_w, "baseline_share": share_b},
        )
    )
    return out


def review_disagreement(reviews: list[ReviewedPart], cfg: DriftSettings) -> Finding | None:
    """Share of accepted or rejected parts the operator's review overturned (parts the line sent
    to review are not counted: the line made no call on them)."""
    judged = [r for r in reviews if r.part.verdict in ("accept", "reject")]
    if len(judged) < cfg.min_reviews:
        return None
    wrong = sum((r.part.verdict == "accept") != (r.review.label == "ok") for r in judged)
    return grade(
        "review_disagreement",
        wrong / len(judged),
        cfg.disagreement_warn,
        cfg.disagreement_high,
        {"reviews": len(judged), "overturned": wrong},
    )


def promise_on_line(rr: LineReviews, promise: PromiseBasis, cfg: DriftSettings) -> Finding | None:
    """The false-reject promise checked on the line's own parts: the rejects operators found good.

    Reviewed rejects are rarely a fair sample (operators open the doubtful ones), so only the
    confirmed false rejects count, against every judged part not confirmed defective: a floor on
    the line's false-reject rate that no choice of which rejects to review can inflate.

    Two questions, two p-values. Does this station's threshold reject more good parts than the
    target (binomial at the target)? Then warn: a threshold set on a few hundred good parts can
    land there by chance, and more calibration parts fix it. Is it more than the promise's own
    law allows (how often chance gives that many under a threshold set on this many good parts,
    the law of the test report's bound)? Then high: the promise does not hold on this line. Zero
    confirmed of zero looked at is no measurement, so nothing is said before a reject is reviewed."""
    if rr.reviewed_rejects == 0 or rr.judged < cfg.min_window:
        return None
    good = max(1, rr.judged - rr.confirmed_defects)
    p_law = frr_chance(promise.calibration_parts, good, promise.target_frr, rr.false_rejects)
    p_target = float(binom.sf(rr.false_rejects - 1, good, promise.target_frr))
    if not promise.guaranteed or p_law is None:
        severity = "ok"  # no promise was made (too few good calibration parts): measured only
    else:
        severity = "high" if p_law < cfg.mmd_p_high else "warn" if min(p_law, p_target) < cfg.mmd_p_warn else "ok"
    details = {
        "p": p_law,
        "p_above_target": p_target,
        "promised": promise.target_frr,
        "guaranteed": promise.guaranteed,
        "calibration_parts": promise.calibration_parts,
        "judged": rr.judged,
        "rejected": rr.rejected,
        "reviewed_rejects": rr.reviewed_rejects,
        "false_rejects": rr.false_rejects,
        "confirmed_defects": rr.confirmed_defects,
        # what the rejects as a whole would give if the reviewed ones were a fair sample of them
        "if_a_fair_sample": rr.rejected * rr.false_rejects / rr.reviewed_rejects / good,
        "alarm_when": "above, by more than chance (p) or the target (p_above_target) allows",
    }
    return Finding("false_reject_promise", rr.false_rejects / good, promise.target_frr, severity, details)


def escape_on_line(lr: LineReviews, test: HeldOutEscape, cfg: DriftSettings) -> Finding | None:
    """The defects the station ships, measured on the line, against its held-out test escape.

    Spot checks are accepted parts picked at random, so the share of them operators find
    defective is the share of shipped parts that are defective. Set against the defects the
    station stopped (its rejects, less the share of reviewed rejects found good, and the parts
    it sent to review that were found defective) it gives the share of defects the line ships,
    beside the share the test split's defects were accepted at. It alarms when the spot checks
    hold more defects than chance allows even at the top of that share's 95 % interval (a test
    split of a few dozen defective parts says little more): warn / high at p < ``mmd_p_warn`` /
    ``mmd_p_high``."""
    if lr.reviewed_spot_checks == 0 or lr.judged < cfg.min_window:
        return None
    shipped_share = lr.shipped_defects / lr.reviewed_spot_checks
    good_share = lr.false_rejects / lr.reviewed_rejects if lr.reviewed_rejects else 0.0
    caught = lr.rejected * (1 - good_share) + lr.held_defects
    shipped = lr.accepted * shipped_share
    escape = shipped / (shipped + caught) if shipped + caught > 0 else 0.0
    top = escape_upper(test)
    # the share of shipped parts that would be defective at that escape rate
    expected = min(1.0, top / (1 - top) * caught / max(1, lr.accepted)) if top < 1 else 1.0
    p = float(binom.sf(lr.shipped_defects - 1, lr.reviewed_spot_checks, expected)) if lr.shipped_defects else 1.0
    severity = "high" if p < cfg.mmd_p_high else "warn" if p < cfg.mmd_p_warn else "ok"
    details = {
        "p": p,
        "test_escape": test.rate,
        "test_escape_top": top,
        "test_defect_parts": test.parts,
        "shipped_defective_share": shipped_share,
        "spot_checks": lr.spot_checks,
        "reviewed_spot_checks": lr.reviewed_spot_checks,
        "shipped_defects": lr.shipped_defects,
        "accepted": lr.accepted,
        "rejected": lr.rejected,
        "caught_defects": caught,
        "alarm_when": "above, by more than chance allows at the top of the test escape's interval (p)",
    }
    return Finding("escape_on_line", escape, test.rate, severity, details)


def escape_upper(test: HeldOutEscape, level: float = 0.95) -> float:
    """The upper end of the test escape's two-sided ``level`` interval (Clopper-Pearson over its
    defective parts): 0 of 20 passed still allows 17 %. Without a part count, the rate itself."""
    if test.parts <= 0:
        return test.rate
    k = round(test.rate * test.parts)
    return 1.0 if k >= test.parts else float(beta.ppf(1 - (1 - level) / 2, k + 1, test.parts - k))


def check_stream(
    session: Session,
    reference: Reference | None,
    product: str,
    line: str,
    model_id: int,
    cfg: DriftSettings,
    promise: PromiseBasis | None = None,
    test_escape: HeldOutEscape | None = None,
) -> tuple[list[Finding], list[JudgedPart]]:
    """-> findings (none while the window is short) and the window they are about."""
    rows = recent_judged(session, product, line, model_id, cfg.window + cfg.baseline)
    window, baseline = rows[-cfg.window :], rows[: -cfg.window]
    if len(window) < cfg.min_window:
        return [], window
    findings: list[Finding] = []
    if reference is not None:
        ref_emb, ref_stats = reference.of(product)
        accepted = [r for r in window if r.verdict == "accept" and r.embedding is not None]
        if len(ref_emb) >= cfg.min_window and len(accepted) >= cfg.min_window:
            cur = np.stack([np.frombuffer(r.embedding, "<f2").astype(np.float32) for r in accepted])
            if cur.shape[1] == ref_emb.shape[1]:
                findings.append(embedding_drift(ref_emb, cur, cfg))
        stats = np.array(
            [[*(getattr(r, k) for k in IMAGE_STATS), r.width * r.height] for r in window if r.brightness is not None]
        )
        if len(ref_stats) >= cfg.min_window and len(stats) >= cfg.min_window:
            findings += stat_drift(ref_stats, stats, cfg)
    if len(baseline) >= cfg.min_baseline:
        findings += output_drift(window, baseline, cfg)
    since = utcnow() - timedelta(days=cfg.lookback_days)
    reviews = [r for r in latest_reviews(session, product, since) if r.part.line == line]
    disagreement = review_disagreement(reviews, cfg)
    if disagreement:
        findings.append(disagreement)
    if promise is not None or test_escape is not None:
        reviewed = line_reviews(session, product, line, model_id, since)
        kept = promise_on_line(reviewed, promise, cfg) if promise is not None else None
        shipped = escape_on_line(reviewed, test_escape, cfg) if test_escape is not None else None
        findings += [f for f in (kept, shipped) if f is not None]
    return findings, window


def run_drift_check(session: Session, cfg: DriftSettings, now: datetime | None = None) -> list[DriftEventRow]:
    """Check every stream of the champion; write and return the drift events. Commits."""
    champ = champion(session)
    if champ is None:
        return []
    reference = load_reference(Path(champ.artifact_path))
    promises = {b.product: b for b in promise_basis(session, champ.id)}
    escapes = held_out_escape(session, champ.id)
    now = now or utcnow()
    events = []
    for product, line in monitored_streams(session, champ.id, now - timedelta(days=cfg.lookback_days)):
        findings, window = check_stream(
            session, reference, product, line, champ.id, cfg, promises.get(product), escapes.get(product)
        )
        for f in findings:
            events.append(
                {
                    "product_id": product,
                    "line": line,
                    "metric": f.metric,
                    "value": f.value,
                    "threshold": f.threshold,
                    "severity": f.severity,
                    "window_start": window[0].captured_at,
                    "window_end": window[-1].captured_at,
                    "details": {**f.details, "model": champ.name, "window": len(window)},
                    "created_at": now,
                }
            )
    stored = record_drift_events(session, events)
    session.commit()
    return stored
