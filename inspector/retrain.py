"""Retraining: learn from operator reviews, promote the challenger only when it is measurably better.

One run:
1. takes the ``retrain`` lease (one run at a time across every process on the database);
2. writes the run's dataset under ``<home>/retrain/run-<id>/``: the original data's rows plus
   every reviewed production image with its latest label, as manifests (so what a challenger
   learned from can be audited). A stable hash of the inspection id holds ``holdout`` of the
   reviewed images out of training (the *recent* evaluation set) and 15 % for validation and
   threshold calibration; the rest is trained on;
3. trains the challenger with the champion's configuration (the classifier's training code);
4. runs champion and challenger through the engine, exactly as on the line, on the *golden*
   set (the original test split plus golden-flagged reviewed images) and on the recent set;
5. promotes only when the challenger is measurably better on recent data (by more than
   ``min_gain``, and the low end of a paired 90 % interval above zero) and measurably worse on
   no product's golden set (a drop over ``golden_tolerance`` whose interval lies below zero);
   otherwise it stays a candidate and the reason is recorded.
The champion is never touched before step 5, so a crash anywhere leaves it serving.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from inspector.checkpoint import model_name
from inspector.corrections import read_corrections
from inspector.dataset import Sample, load_dataset, product_folders
from inspector.engine import Engine
from inspector.errors import DataError, InspectorError
from inspector.feature_memo import remember_patch_features, reuse_patch_features
from inspector.settings import Settings
from inspector.store.base import utcnow
from inspector.store.files import ImageStore
from inspector.store.monitoring import champion
from inspector.store.queries import latest_manuals, latest_reviews
from inspector.store.repo import audit, promote_model, register_model
from inspector.store.retraining import (
    champion_data,
    finish_run,
    high_drift_since,
    last_run_started,
    mark_interrupted,
    reviews_since,
    start_run,
)
from inspector.store.scheduling import acquire_lease, release_lease
from models.card import ModelCard
from models.metrics import balanced_accuracy, paired_difference

log = logging.getLogger(__name__)
LEASE = "retrain"
VAL_SHARE = 0.15  # of reviewed images, beside the held-out share
FIELDS = ["image", "product", "label", "defect_type", "split", "mask", "source", "group"]


@dataclass(frozen=True)
class RetrainOutcome:
    """What one call of ``run_retrain`` did, for the CLI, the scheduler and the demo."""

    status: Literal["finished", "failed", "skipped"]
    reason: str
    run: int | None = None  # the retrain_runs row; None when skipped
    promoted: bool = False
    challenger: int | None = None  # the registered model version
    counts: dict[str, Any] = field(default_factory=dict)  # images learnt from, by source
    metrics: dict[str, Any] = field(default_factory=dict)  # champion and challenger on golden and recent parts
    seconds: dict[str, float] = field(default_factory=dict)  # dataset, training, comparison


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _unit(inspection_uuid: str) -> float:
    """A stable number in [0, 1] per inspection: its split never changes between runs."""
    return int(hashlib.sha1(inspection_uuid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def write_run_dataset(session: Session, images: ImageStore, roots: list[Path], run_dir: Path, holdout: float) -> dict:
    """Original rows + reviewed production images as one manifest per product. -> counts."""
    original = load_dataset(roots)
    counts = {"original": len(original.samples), "reviewed": 0, "recent": 0, "golden_reviewed": 0, "skipped": {}}
    by_product: dict[str, list[dict]] = {p: [] for p in original.products()}
    for s in original.samples:
        by_product[s.product].append(_row(s.path, s.product, s.defect_type, s.split, "original", s.group))
    for r in latest_reviews(session):
        part, product = r.part, r.part.product_id
        defect = "ok" if r.review.label == "ok" else (r.review.defect_type or part.defect_type)
        path = images.path(part.image_sha256) if part.image_sha256 else None
        why = (
            "product not in the training data"
            if product not in by_product
            else "defect without a type"
            if defect is None
            else "image purged"
            if path is None or not path.is_file()
            else None
        )
        if why:
            counts["skipped"][why] = counts["skipped"].get(why, 0) + 1
            continue
        u = _unit(part.uuid)
        if part.golden:
            split, source = "test", "golden"
            counts["golden_reviewed"] += 1
        elif u < holdout:
            split, source = "test", "recent"
            counts["recent"] += 1
        else:  # some production parts calibrate the thresholds: the promised FRR is about production
            split, source = ("val" if u < holdout + VAL_SHARE else "train"), "review"
        counts["reviewed"] += 1
        by_product[product].append(_row(path, product, defect, split, f"{source}:{part.uuid}"))
    stored = latest_manuals(session)  # operators may have edited a manual since the data was written
    manuals = {p: stored[p][1] if p in stored else m.text for p, m in original.manuals.items()}
    for product, rows in by_product.items():
        folder = run_dir / product
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manual.md").write_text(manuals[product], encoding="utf-8")
        with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(rows)
    return counts


def _row(path: Path, product: str, defect: str, split: str, source: str, group: str = "") -> dict:
    label = "ok" if defect == "ok" else "defect"
    return {"image": str(Path(path).resolve()), "product": product, "label": label, "defect_type": defect,
            "split": split, "mask": "", "source": source, "group": group}  # fmt: skip


def decision_outcomes(engine: Engine, samples: list[Sample]) -> dict[str, dict[str, np.ndarray]]:
    """Per product, for each sample: its truth (defect?) and the line decision (not accepted?).

    A warn verdict goes to an operator instead of passing, so it counts as not accepted; an
    image the engine could not read counts as accepted (it was not caught).
    """
    out = {}
    for product in sorted({s.product for s in samples}):
        group = [s for s in samples if s.product == product]
        verdicts = engine.inspect_files(product, [s.path for s in group])
        out[product] = {
            "truth": np.array([s.is_defect for s in group]),
            "flagged": np.array([not isinstance(v, Exception) and v.verdict != "accept" for v in verdicts]),
        }
    return out


def scores(outcomes: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Per product: balanced accuracy of the line decision, parts, defects."""
    return {
        product: {
            "score": balanced_accuracy(o["truth"], o["flagged"]),
            "n": len(o["truth"]),
            "defects": int(o["truth"].sum()),
        }
        for product, o in outcomes.items()
    }


def compare(champ: dict, chall: dict, sims: int = 2000) -> dict:
    """Challenger minus champion with a 90 % paired interval: per product on the golden set,
    and over all recent parts (outcomes as ``decision_outcomes`` gives them, per set)."""

    def one(a: dict, b: dict) -> dict:
        diff, low, high = paired_difference(a["truth"], a["flagged"], b["flagged"], sims)
        return {"diff": diff, "low": low, "high": high, "n": len(a["truth"])}

    def pooled(outcomes: dict) -> dict:
        return {k: np.concatenate([o[k] for o in outcomes.values()]) for k in ("truth", "flagged")}

    golden = {p: one(o, chall["golden"][p]) for p, o in champ["golden"].items()}
    recent = one(pooled(champ["recent"]), pooled(chall["recent"])) if champ["recent"] else None
    return {"golden": golden, "recent": recent}


def decide(comparison: dict, tolerance: float, min_gain: float) -> tuple[bool, str]:
    """Promote only when the challenger is measurably better on recent parts and measurably
    worse on no product's golden set. -> (promote, reason).

    Worse: the drop is over ``tolerance`` and even the optimistic end of its 90 % interval is a
    loss. Better: the gain is over ``min_gain`` and the pessimistic end of its interval is a gain.
    On a few dozen parts that asks for several parts fixed and few broken, not one part's luck.
    """
    for product, c in comparison["golden"].items():
        if c["diff"] < -tolerance and c["high"] < 0:
            return False, (
                f"worse on the golden set of {product}: {c['diff']:+.3f} balanced accuracy "
                f"(90 % interval {c['low']:+.3f} to {c['high']:+.3f}, n={c['n']}; tolerance {tolerance})"
            )
    r = comparison["recent"]
    if r is None:
        return False, "no held-out reviewed images to show an improvement on recent data"
    gain = f"{r['diff']:+.3f} (90 % interval {r['low']:+.3f} to {r['high']:+.3f}, n={r['n']})"
    if r["diff"] <= min_gain or r["low"] <= 0:
        return False, f"not measurably better on recent reviewed data: {gain}, needs > +{min_gain} and a low end > 0"
    return True, f"better on recent reviewed data, {gain}, and measurably worse on no golden set"


def _settings_like(settings: Settings, card: ModelCard) -> Settings:
    """The champion's model and training configuration, so only the data changes."""
    s = settings.model_copy(deep=True)
    s.model.text_source = card.text_source
    s.model.classifier = card.classifier is not None
    if card.classifier is not None:
        s.model.backbone = card.classifier.backbone
        s.model.input_size = card.classifier.input_size
        s.model.fusion = card.classifier.fusion.fusion
        s.model.hidden_dim = card.classifier.fusion.hidden_dim
        s.train.mode = card.classifier.mode
        s.train.trainable_stages = card.classifier.trainable_stages
    s.anomaly.enabled = bool(card.anomaly_backbones)
    s.anomaly.views = {p: info.anomaly.view.label for p, info in card.products.items() if info.anomaly}
    return s


def run_retrain(
    settings: Settings, sessions: sessionmaker[Session], trigger: str = "manual", actor: str = "retrain"
) -> RetrainOutcome:
    """One retraining run (see the module's doc). -> what it did; never raises for a failed run."""
    holder = holder_id()
    ttl = settings.retrain.lease_minutes * 60
    with sessions() as s:
        if not acquire_lease(s, LEASE, holder, ttl):
            return RetrainOutcome("skipped", "another retraining run holds the lease")
        mark_interrupted(s)
        champ = champion(s)
        run_id = start_run(s, trigger, champ.id if champ else None)
    beat = threading.Event()
    threading.Thread(target=_heartbeat, args=(sessions, holder, ttl, beat), daemon=True).start()
    try:
        with remember_patch_features(settings.anomaly.memo_mb):  # the comparison reuses the training's
            return _run(settings, sessions, run_id, champ, trigger, actor)
    except Exception as exc:
        log.exception("retraining run %s failed", run_id)
        with sessions() as s:
            finish_run(s, run_id, status="failed", decision="none", reason=f"{type(exc).__name__}: {exc}"[:2000])
        return RetrainOutcome("failed", str(exc), run=run_id)
    finally:
        beat.set()
        with sessions() as s:
            release_lease(s, LEASE, holder)


def _heartbeat(sessions, holder: str, ttl: float, stop: threading.Event) -> None:
    """Renew the lease while the run lives: a killed run's lease lapses within ``ttl``."""
    while not stop.wait(ttl / 3):
        try:
            with sessions() as s:
                acquire_lease(s, LEASE, holder, ttl)
        except Exception:
            log.warning("could not renew the retrain lease", exc_info=True)


def _run(settings: Settings, sessions, run_id: int, champ: dict | None, trigger: str, actor: str) -> dict:
    from inspector.training import train_model

    if champ is None:
        raise InspectorError("no champion model to retrain: run the station (or `inspector models promote`) first")
    champ_dir = Path(champ.artifact_path)
    champ_engine = Engine(champ_dir, settings.model.device, settings.max_image_pixels, settings.cache_dir)
    roots = settings.retrain.data or [Path(r) for r in champ_engine.card.data.get("roots", [])]
    if not roots:
        raise DataError("the champion's card names no training data: set retrain.data (INSPECTOR_RETRAIN__DATA)")
    run_dir = settings.home / "retrain" / f"run-{run_id}"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with sessions() as s:
        counts = write_run_dataset(s, ImageStore(settings.images_dir), roots, run_dir, settings.retrain.holdout)
    t1 = time.perf_counter()
    out = settings.models_dir / f"challenger-{run_id}"
    card = train_model(_settings_like(settings, champ_engine.card), [run_dir], out, progress=False)
    t2 = time.perf_counter()
    chall_engine = Engine(out, settings.model.device, settings.max_image_pixels, settings.cache_dir)
    for engine in (champ_engine, chall_engine):
        reuse_patch_features(engine.parts.get("anomaly"))
    ds = load_dataset([run_dir])
    test = ds.split("test")
    golden = [s for s in test if not _source_is(s, "recent")]
    recent = [s for s in test if _source_is(s, "recent")]
    outcomes = {
        name: {"golden": decision_outcomes(engine, golden), "recent": decision_outcomes(engine, recent)}
        for name, engine in (("champion", champ_engine), ("challenger", chall_engine))
    }
    t3 = time.perf_counter()
    seconds = {"dataset": round(t1 - t0, 1), "training": round(t2 - t1, 1), "comparison": round(t3 - t2, 1)}
    log.info("retraining run %s: %s s", run_id, seconds)
    metrics = {name: {k: scores(v) for k, v in o.items()} for name, o in outcomes.items()}
    comparison = compare(outcomes["champion"], outcomes["challenger"])
    metrics["challenger"]["vs_champion"] = comparison
    promote, reason = decide(comparison, settings.retrain.golden_tolerance, settings.retrain.min_gain)
    with sessions() as s:
        mv = register_model(s, model_name(out, card), str(out.resolve()), _card_summary(card), metrics["challenger"])
        if promote:
            promote_model(s, mv.id, actor)
        else:
            audit(s, actor, "keep_candidate", f"model:{mv.id}", {"reason": reason})
        s.commit()
        finish_run(
            s,
            run_id,
            status="finished",
            challenger_id=mv.id,
            data_counts=counts,
            champion_metrics=metrics["champion"],
            challenger_metrics=metrics["challenger"],
            decision="promoted" if promote else "kept_candidate",
            reason=reason,
        )
    return RetrainOutcome("finished", reason, run_id, promote, mv.id, counts, metrics, seconds)


def _source_is(sample: Sample, source: str) -> bool:
    return sample.source.startswith(f"{source}:")


def _card_summary(card: ModelCard) -> dict:
    return card.summary()


def due_trigger(settings: Settings, sessions: sessionmaker[Session]) -> str | None:
    """The reason a retrain is due now (new reviews, label corrections, high drift), or None."""
    cfg = settings.retrain
    with sessions() as s:
        since = last_run_started(s)
        n = reviews_since(s, since)
        if n >= cfg.min_new_reviews:
            return f"reviews: {n} new reviewed labels"
        roots, trained_at = champion_data(s)
        fixed = corrections_since([Path(r) for r in cfg.data or roots], _latest(since, trained_at))
        if fixed:
            return f"label corrections: {fixed} training images relabelled since the champion learnt"
        cooled = since is None or utcnow() - since >= timedelta(hours=cfg.drift_cooldown_hours)
        if cfg.on_high_drift and cooled:
            events = high_drift_since(s, since or utcnow() - timedelta(days=1))
            if events:
                e = events[-1]
                return f"drift: {e['metric']} high on {e['product']}/{e['line'] or '-'}"
    return None


def corrections_since(roots: list[Path], since: datetime | None) -> int:
    """Label corrections made in the training data after ``since`` (all of them without one)."""
    n = 0
    for root in roots:
        if not root.is_dir():
            continue
        for folder in product_folders(root):
            found, _ = read_corrections(folder)
            n += sum(since is None or _when(c.created_at) > since for c in found.values())
    return n


def _when(stamp: str | None) -> datetime:
    """An ISO time as UTC (naive means UTC, as the store keeps it); unreadable counts as long ago."""
    try:
        t = datetime.fromisoformat(stamp or "")
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _latest(run: datetime | None, trained_at: str | None) -> datetime | None:
    """The later of the last run's start (the store gives UTC) and the champion's training time."""
    return max([t for t in (run, _when(trained_at) if trained_at else None) if t is not None], default=None)
