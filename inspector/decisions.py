"""Fit each product's decision: which parts decide and on what scale (chosen on val), then
the verdict thresholds (conformal, on the calibration split, touched once, after every choice).

Keeping the two apart is what makes the false-reject promise hold on new parts: the epoch,
the temperatures, the part choice and the scales all looked at val; the thresholds come from
good parts that chose none of them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from sklearn.metrics import f1_score

from inspector.manual import Manual
from inspector.outputs import SplitOutputs, concat
from models.calibration import Thresholds, calibrate_thresholds, conformal_quantile, reject_without, threshold_setters
from models.card import (
    TYPE_VIEWS,
    VIEWS_SAID,
    AnomalySpec,
    Decision,
    PartScale,
    ProductCard,
    ThresholdBasis,
    ThresholdSetter,
)
from models.decision import (
    auroc,
    combine,
    escape_at_quantile,
    fit_platt,
    fit_scale,
    low_frr_escape,
    win_rate,
)

# Without good parts there is no false-reject rate to hold: reject on the classifier's
# calibrated probability alone (P(defect) > 0.5), send 0.3-0.5 to review, and say so.
UNCALIBRATED = Thresholds(warn=0.3, reject=0.5, target_frr=0.0, n_good=0, guaranteed=False)
# P(defect) piles up near 1, distances do not: probabilities are compared as logits
TRANSFORM = {"classifier": "logit", "defect_head": "logit", "anomaly": "identity", "segmentation": "identity"}
NEEDS_MANUAL = {"classifier"}  # scores an image-only verdict cannot have


def fallback_decision() -> Decision:
    """A product the model was not built for: either of the classifier's P(defect) over 0.5."""
    parts = {"classifier": PartScale(), "defect_head": PartScale()}
    return Decision(parts=parts, thresholds=UNCALIBRATED, calibrated_on="uncalibrated")


def candidates(available: list[str]) -> list[list[str]]:
    """Score sets worth trying: every non-empty subset (there are at most four scores)."""
    return [list(c) for r in range(1, len(available) + 1) for c in itertools.combinations(available, r)]


def _scales(parts: list[str], good: dict[str, np.ndarray]) -> dict[str, PartScale]:
    return {p: fit_scale(good[p], TRANSFORM.get(p, "identity")) for p in parts}


def fit_decision(
    val: SplitOutputs | None,
    calib: SplitOutputs | None,
    image_only: bool,
    target_frr: float,
    warn_frr: float,
    parts: list[str] | None = None,
    allowed: set[str] | None = None,
    train_defects: SplitOutputs | None = None,
    confidence: float = 0.95,
    pooling: str = "auto",
    probation: frozenset[str] = frozenset(),
) -> Decision:
    """The product's decision; ``parts`` fixes the deciding scores, else every ``allowed`` score
    decides (all by default) unless a smaller set lets fewer val defects through in at least
    ``confidence`` of the bootstrap redraws of val's units (physical parts, or the boards crops
    were cut from; 0: val's best set outright).
    ``train_defects`` (scored out of fold, inspector/selection.py) vote beside val's defects.
    ``pooling`` "auto": the deciding scores' largest, or their mean where that wins by the same
    rule. ``image_only``: without the manual's scores. ``probation``: scores that are not part of
    "every score" and decide only inside a set that beats it by the same rule (a head taught by
    labels alone: it knows the train defects' look, not where a new kind of defect would be)."""

    def scores_of(o: SplitOutputs) -> dict[str, np.ndarray]:
        return {k: v for k, v in o.scores.items() if not (image_only and k in NEEDS_MANUAL)}

    source = calib or val
    available = sorted(scores_of(source)) if source is not None else []
    if allowed is not None and parts is None:
        available = [p for p in available if p in allowed] or available
    if not available:
        return fallback_decision()
    val_good = val is not None and bool((~val.is_defect).any())
    val_both = val_good and bool(val.is_defect.any())
    choose_on = (_with_defects(val, train_defects) if parts is None else val) if val_good else None
    if choose_on is not val and choose_on is not None:  # the out-of-fold runs may lack a score
        kept = [p for p in available if p in choose_on.scores]
        choose_on, available = (choose_on, kept) if kept else (val, available)
    good: dict[str, np.ndarray] = {}
    if val_good:
        good = {p: s[~val.is_defect] for p, s in scores_of(val).items()}
    elif calib is not None:  # no val good parts to scale on: single parts only, where the scale changes nothing
        good = {p: s[~calib.is_defect] for p, s in scores_of(calib).items()}
    if parts is not None:
        chosen, why = [p for p in parts if p in available], "fixed"
        if not chosen:
            return fallback_decision()
    elif choose_on is not None and choose_on.is_defect.any():
        ranked = []
        on = "val" if choose_on is val else f"val + {len(train_defects.target)} out-of-fold train defects"  # type: ignore[union-attr]
        for c in candidates(available):
            s = combine(scores_of(choose_on), _scales(c, good))
            esc, auc = low_frr_escape(s, choose_on.is_defect, target_frr), auroc(s, choose_on.is_defect)
            at = escape_at_quantile(s, choose_on.is_defect, target_frr)
            text = f"{'+'.join(c)}: escape {esc:.3f} (at {target_frr:.0%}: {at:.3f}), AUROC {auc:.3f}"
            ranked.append(((round(esc, 9), -auc, len(c)), c, text, s))
        ranked.sort(key=lambda t: t[0])
        order = [(c, s) for _, c, _, s in ranked]
        every = [p for p in available if p not in probation] or available
        chosen, verdict = _all_unless_beaten(order, every, choose_on, target_frr, confidence)
        if on_trial := sorted(probation & set(available) - set(chosen)):
            verdict += f" ({'+'.join(on_trial)} on probation, left out)"
        why = f"on {on}: {verdict}; " + "; ".join(t[2] for t in ranked)
    else:  # nothing to choose on: the anomaly part holds without defect examples
        chosen = ["anomaly"] if "anomaly" in available else available[:1]
        why = "no val defects to choose on"
    scales = _scales(chosen, good) if good else {p: PartScale() for p in chosen}
    pool, pooled = _pooling(scales, choose_on, scores_of, target_frr, confidence, pooling)
    why += pooled
    typing, views, typed = choose_typing(val)
    if calib is None or (~calib.is_defect).sum() == 0:
        probabilities = [p for p in chosen if p in ("classifier", "defect_head")] or [available[0]]
        chosen, scales = probabilities, {p: PartScale() for p in probabilities}
        return Decision(parts=scales, thresholds=UNCALIBRATED, typing=typing, type_views=views,
                        calibrated_on="no good parts to calibrate on", selected_on=why + typed)  # fmt: skip
    good_cal = combine(scores_of(calib), scales, pool)[~calib.is_defect]
    units = np.array([s.unit for s, d in zip(calib.samples, calib.is_defect, strict=True) if not d])
    thresholds = calibrate_thresholds(good_cal, target_frr, warn_frr, units)
    val_score = combine(scores_of(val), scales, pool) if val_both else None
    platt = fit_platt(val_score, val.is_defect) if val_score is not None else None
    return Decision(
        parts=scales,
        pooling=pool,
        thresholds=thresholds,
        typing=typing,
        type_views=views,
        platt=platt,
        calibrated_on=f"{_good_parts(thresholds)} of the calibration split",
        selected_on=why + typed,
        basis=threshold_basis(calib, good_cal, thresholds, val if val_both else None, val_score),
    )


def _good_parts(th: Thresholds) -> str:
    if th.n_parts is None or th.n_parts == th.n_good:
        return f"{th.n_good} good parts"
    return f"{th.n_good} good images of {th.n_parts} parts"


def threshold_basis(
    calib: SplitOutputs, good_cal: np.ndarray, thresholds: Thresholds, val: SplitOutputs | None,
    val_score: np.ndarray | None,
) -> ThresholdBasis:  # fmt: skip
    """The good calibration parts the reject threshold stands on, and what it would be if a
    review found them defective (models/card.py: ThresholdBasis)."""
    # without a promise the threshold is the largest score: its part is worth a look all the same
    good = [s for s, d in zip(calib.samples, calib.is_defect, strict=True) if not d]
    idx = threshold_setters(good_cal, thresholds.reject)
    set_by = [ThresholdSetter(image=str(good[i].path), part=good[i].unit, score=float(good_cal[i])) for i in idx]
    units = np.array([s.unit for s in good])
    without = reject_without(good_cal, units, {p.part for p in set_by}, thresholds.target_frr)
    esc = esc_without = None
    if val is not None and val_score is not None:
        bad = val_score[val.is_defect]
        esc = float((bad <= thresholds.reject).mean())
        esc_without = float((bad <= without).mean()) if without is not None else None
    return ThresholdBasis(set_by=set_by, reject_without=without, val_escape=esc, val_escape_without=esc_without)


def _all_unless_beaten(
    ranked: list[tuple[list[str], np.ndarray]], every: list[str], on: SplitOutputs, target_frr: float,
    confidence: float,
) -> tuple[list[str], str]:  # fmt: skip
    """Every score decides (what a defect type no part was taught still trips) unless a smaller
    set beats it on val beyond chance: val holds a handful of physical parts per defect type, and
    the best of fifteen sets on so few is mostly the luckiest (docs/RESULTS.md, magnetic-tile).
    Redraws take whole units (``Sample.unit``): crops of one board are one piece of evidence.
    ``ranked``: (set, its combined score on ``on``), best first."""
    best = ranked[0][0]
    if confidence <= 0 or best == every:
        return best, f"{'+'.join(best)} best"
    groups = np.array([s.unit for s in on.samples])
    incumbent = next(score for c, score in ranked if c == every)
    closest = (0.0, best)
    for c, score in ranked:
        if c == every:
            break
        rate = win_rate(score, incumbent, on.is_defect, groups, target_frr)
        if rate >= confidence:
            return c, f"{'+'.join(c)} beats all scores in {rate:.0%} of part redraws (needs {confidence:.0%})"
        closest = max(closest, (rate, c))
    rate, c = closest
    return every, f"all scores (closest: {'+'.join(c)} beats them in {rate:.0%} of redraws, needs {confidence:.0%})"


def _pooling(
    scales: dict[str, PartScale], on: SplitOutputs | None, scores_of, target_frr: float, confidence: float,
    pooling: str,
) -> tuple[str, str]:  # fmt: skip
    """ "max" or "mean", and the words for ``selected_on``. The largest score is the default: any
    one part fails a part on its own. The mean lets parts that each see a defect a little add
    up (pcb: classifier and bank each half-sure of a thin spur) and averages their noise on good
    parts, at the cost of a borderline defect only one part sees; so it must let fewer of ``on``'s
    defects through than the largest in ``confidence`` of the part redraws, as a smaller set must."""
    if len(scales) < 2:
        return "max", ""
    if pooling != "auto":
        return pooling, f"; pooled by their {pooling} (fixed)"
    if on is None or on.is_defect.all() or not on.is_defect.any():
        return "max", ""
    scores = scores_of(on)
    mean, largest = combine(scores, scales, "mean"), combine(scores, scales, "max")
    if confidence <= 0:  # val's best outright
        better = low_frr_escape(mean, on.is_defect, target_frr) < low_frr_escape(largest, on.is_defect, target_frr)
        return ("mean" if better else "max"), f"; pooled by their {'mean' if better else 'largest'} (val's best)"
    groups = np.array([s.unit for s in on.samples])
    rate = win_rate(mean, largest, on.is_defect, groups, target_frr)
    pool = "mean" if rate >= confidence else "max"
    return pool, (
        f"; pooled by their {'mean' if pool == 'mean' else 'largest'} (the mean lets fewer defects through "
        f"in {rate:.0%} of part redraws, needs {confidence:.0%})"
    )


def _with_defects(val: SplitOutputs, extra: SplitOutputs | None) -> SplitOutputs:
    """Val, with ``extra``'s defects added, over the scores both have."""
    if extra is None or not extra.is_defect.any():
        return val
    both = [val, extra.where(extra.is_defect)]
    return concat([replace(o, types={}, class_probs=None, maps=None) for o in both])


def choose_typing(val: SplitOutputs | None) -> tuple[str, int, str]:
    """The part whose type probabilities name val defects best (macro-F1), anomaly on a tie; or
    "both" (the mean of the two parts' probabilities) where it names them better than either;
    and over how many of the part's turns and mirrors the classifier's are averaged: more only
    where that does better still (strictly: each view costs a classifier pass for every part not
    accepted). -> (typing, views, why)."""
    if val is None or not val.types:
        return "classifier", 1, ""
    defect = val.is_defect
    best = ("anomaly" if "anomaly" in val.types else "classifier", 1, -1.0)
    if not defect.any():
        return best[0], 1, ""
    truth = val.target[defect] - 1
    candidates = [*val.types, *(["both"] if {"classifier", "anomaly"} <= set(val.types) else [])]
    collected = 1 if val.turned_types is None else val.turned_types.shape[1]
    tried = []
    for views in [v for v in TYPE_VIEWS if v <= collected]:
        for part in candidates if views == 1 else [c for c in candidates if c != "anomaly"]:
            probs = val.types_for(part, views)
            f1 = f1_score(truth, probs[defect].argmax(1), average="macro", labels=sorted(set(truth)), zero_division=0)
            tried.append(f"{part}{VIEWS_SAID[views]} {f1:.3f}")
            if f1 > best[2] + 1e-9 or (abs(f1 - best[2]) <= 1e-9 and part == "anomaly"):
                best = (part, views, f1)
    return best[0], best[1], "; defect types named on val (type macro-F1): " + ", ".join(tried)


def map_reference(calib: SplitOutputs | None, target_frr: float, from_segmentation: bool) -> float | None:
    """The map value good parts exceed at the target rate: heatmaps are drawn relative to it.
    The map is the segmentation head's P(defect) where masks taught it (its score is the map's
    strongest logit), else the bank's distances (its score is their maximum)."""
    if calib is None:
        return None
    key = "segmentation" if from_segmentation else "anomaly"
    if key not in calib.scores or not (~calib.is_defect).any():
        return None
    ref = conformal_quantile(calib.scores[key][~calib.is_defect], target_frr)[0]
    return float(1 / (1 + np.exp(-ref))) if key == "segmentation" else ref


def product_card(
    manual: Manual,
    decision: Decision,
    image_only: Decision,
    spec: AnomalySpec | None,
    calib: SplitOutputs | None,
    target_frr: float,
) -> ProductCard:
    """A product's entry in the model card, its bank's heatmap scale set by the calibration
    parts that set its thresholds (training and onboarding build it the same way)."""
    if spec is not None:
        ref = map_reference(calib, target_frr, spec.map_from_segmentation)
        spec = spec.model_copy(update={"map_reference": ref})
    return ProductCard(
        name=manual.name,
        classes=manual.classes,
        manual_sha256=manual.sha256,
        manual_version=manual.version,
        manual=manual.text,
        decision=decision,
        image_only=image_only,
        anomaly=spec,
    )
