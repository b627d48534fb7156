"""Metrics of decisions on a split: the escape rate at the promised false-reject rate first,
the measured FRR beside its target and its conformal bound, then AUROC, defect-type F1 and
(where masks exist) pixel AUROC."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from sklearn.metrics import f1_score, roc_auc_score

from inspector.decisions import NEEDS_MANUAL
from inspector.outputs import SplitOutputs
from models.calibration import frr_bound, frr_chance, good_shift_p, part_weights, parts_needed, smallest_promise
from models.card import Decision
from models.decision import combine
from models.metrics import escape_interval, expected_calibration_error


def decision_metrics(
    out: SplitOutputs, decision: Decision, image_only: bool = False, calib: SplitOutputs | None = None
) -> dict:
    """How the station's decision does on ``out`` (the product's images of one split); with the
    ``calib`` split that set the thresholds, whether its good parts score like these."""
    scores = {k: v for k, v in out.scores.items() if not (image_only and k in NEEDS_MANUAL)}
    parts = {k: s for k, s in decision.parts.items() if k in scores}
    defect = out.is_defect
    named = "+".join(parts) + (" (mean)" if decision.pooling == "mean" and len(parts) > 1 else "")
    m: dict = {"n": len(out.target), "n_defect": int(defect.sum()), "parts": named}
    if not parts or not len(out.target):
        return m
    score = combine(scores, parts, decision.pooling)
    th = decision.thresholds
    # redraws take whole units: crops of one board err together, so they count as one draw
    units = np.array([s.unit for s in out.samples])
    if defect.any() and (~defect).any():
        m["auroc"] = float(roc_auc_score(defect, score))
        for name, s in scores.items():
            m[f"{name}_auroc"] = float(roc_auc_score(defect, s))
    if defect.any():
        m["escape_rate"] = float((score[defect] <= th.reject).mean())  # defects not rejected
        m["escape_low"], m["escape_high"] = escape_interval(score[defect] <= th.reject, units[defect])
        m["defect_parts"] = len(set(units[defect].tolist()))
        m["escape_to_accept_rate"] = float((score[defect] <= th.warn).mean())  # not even sent to review
        types = sorted({s.defect_type for s in out.samples if s.is_defect})
        kind = np.array([s.defect_type for s in out.samples])
        m["escape_by_type"] = {t: float((score[kind == t] <= th.reject).mean()) for t in types}
    if (~defect).any():
        rejected = score[~defect] > th.reject
        m["false_reject_rate"] = float(rejected.mean())
        m["warn_rate_good"] = float(((score[~defect] > th.warn) & (score[~defect] <= th.reject)).mean())
        m["target_frr"] = th.target_frr
        # the laws count what the promise counted (card format 13: physical parts, whose images fail together)
        weight, n_good = part_weights(units[~defect]) if th.n_parts else (np.ones(len(rejected)), len(rejected))
        parts_rejected = float((weight * rejected).sum())
        m["frr_bound"] = frr_bound(th.parts, n_good, th.target_frr) if th.guaranteed else None
        m["guaranteed"] = th.guaranteed
        m["frr_law_counts_parts"] = th.n_parts is not None
        m["calibration_parts"] = th.parts
        if th.target_frr > 0:
            m["parts_needed"] = parts_needed(th.target_frr)
        if th.parts:
            m["smallest_promise"] = smallest_promise(th.parts)
        if th.guaranteed:
            m["frr_chance"] = frr_chance(th.parts, n_good, th.target_frr, math.ceil(parts_rejected - 1e-9))
        m["good_parts"] = len(set(units[~defect].tolist()))
        if calib is not None and set(parts) <= set(calib.scores) and (~calib.is_defect).any():
            calib_parts = np.array([s.unit for s in calib.samples])[~calib.is_defect]
            calib_good = combine(calib.scores, parts, decision.pooling)[~calib.is_defect]
            m["good_shift_p"] = good_shift_p(calib_good, score[~defect], calib_parts, units[~defect])
    # without its manual the station names no defect type (the verdict says image-only), so the
    # types a manual made possible are not credited to the image-only decision
    types = None if image_only else out.decided_types(decision)
    if types is not None and defect.any():
        truth, pred = out.target[defect] - 1, types[defect].argmax(1)
        m["defect_type_macro_f1"] = float(
            f1_score(truth, pred, labels=sorted(set(truth.tolist())), average="macro", zero_division=0)
        )
        if decision.type_views > 1:  # what the view alone named, to see what the turns bought
            alone = out.types_for(decision.typing)[defect].argmax(1)  # type: ignore[index]
            m["defect_type_macro_f1_view_alone"] = float(
                f1_score(truth, alone, labels=sorted(set(truth.tolist())), average="macro", zero_division=0)
            )
        station = np.where(score > th.reject, types.argmax(1) + 1, 0)  # what the line decides, type included
        m["macro_f1"] = float(
            f1_score(out.target, station, labels=sorted(set(out.target.tolist())), average="macro", zero_division=0)
        )
    if out.class_probs is not None and not image_only:
        pred = out.class_probs.argmax(1)
        m["classifier_accuracy"] = float((pred == out.target).mean())
        m["ece"] = expected_calibration_error(out.class_probs.max(1), pred == out.target)
    return m


def rows_typed(out: SplitOutputs, *decisions: Decision) -> np.ndarray:
    """The parts whose types a report reads, as a boolean mask: every defect (type F1) and each
    part one of ``decisions`` does not accept (the station names its type)."""
    rows = out.is_defect.copy()
    for d in decisions:
        parts = {k: s for k, s in d.parts.items() if k in out.scores}
        if parts and len(out.target):
            rows |= combine(out.scores, parts, d.pooling) > d.thresholds.warn
    return rows


def pixel_auroc(out: SplitOutputs, shrink: int = 4) -> float | None:
    """AUROC of the anomaly maps against the defect masks over every pixel of the split's images
    (good images count as all-good pixels); None without masks or maps. Maps and masks are
    compared at 1/``shrink`` of the image size, which keeps a split to a few million pixels."""
    if out.maps is None or not any(s.mask for s in out.samples if s.is_defect):
        return None
    scores, truth = [], []
    for s, amap in zip(out.samples, out.maps, strict=True):
        if s.is_defect and not s.mask:
            continue  # a defect without a mask says nothing about where
        with Image.open(s.path) as im:
            w, h = max(1, im.width // shrink), max(1, im.height // shrink)
        heat = np.asarray(Image.fromarray(amap.astype(np.float32)).resize((w, h), Image.BILINEAR))
        if s.mask:
            with Image.open(s.mask) as mk:
                mask = np.asarray(mk.convert("L").resize((w, h), Image.NEAREST)) > 127
        else:
            mask = np.zeros((h, w), bool)
        scores.append(heat.ravel())
        truth.append(mask.ravel())
    y = np.concatenate(truth)
    return float(roc_auc_score(y, np.concatenate(scores))) if y.any() and not y.all() else None
