"""Train, choose, calibrate and evaluate a model on a dataset: the engine behind ``inspector
train`` and ``inspector eval``. The ML itself lives in ``models``; this module feeds it files,
manuals and caches, and writes the checkpoint with its model card.

The splits keep their roles apart: train teaches the parts; val picks the epoch, the
temperatures, each product's anomaly view, deciding parts and scales; the calibration split
(good train parts held out, ``dataset.CALIBRATION``) sets the verdict thresholds and nothing
else; test is only reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from inspector.anomaly_fit import fit_anomaly, fit_type_heads
from inspector.checkpoint import keep_recorded_model, load_model, resolve_device
from inspector.dataset import CALIBRATION, Sample, load_dataset
from inspector.decisions import fallback_decision, fit_decision, product_card
from inspector.errors import DataError
from inspector.evaluation import decision_metrics, pixel_auroc, rows_typed
from inspector.feature_memo import remember_patch_features
from inspector.outputs import SplitOutputs, collect, collect_cross_fit, with_turned_types
from inspector.parts import Part, TypesOverTurns
from inspector.parts.classifier import ClassifierPart
from inspector.reference import build_reference, save_reference
from inspector.segmentation_fit import fit_segmentation
from inspector.selection import out_of_fold, refits_segmentation
from inspector.settings import Settings, VerdictSettings
from inspector.training_data import ImageSet, Prepared, limit_per_class, prepare
from models import (
    Classifier,
    ClassifierEnsemble,
    CrossModalClassifier,
    FineTuneModel,
    FusionConfig,
    ImageEncoder,
    fit_temperature,
    save_checkpoint,
)
from models.card import ClassifierSpec, Decision, ModelCard
from models.inference import precision_for
from models.training.loop import TrainConfig, predict, train


def _counts(samples: list[Sample]) -> dict:
    c = Counter((s.split, s.product, s.defect_type) for s in samples)
    out: dict = {}
    for (split, product, defect), n in sorted(c.items()):
        out.setdefault(split, {}).setdefault(product, {})[defect] = n
    return out


@dataclass
class TrainedClassifier:
    model: Classifier
    encoder: ImageEncoder
    spec: ClassifierSpec
    record: dict  # training configuration and history, for the card
    finetuned: bool


def train_classifier(
    settings: Settings, prep: Prepared, train_samples: list[Sample], progress: bool
) -> TrainedClassifier:
    """Train on ``train_samples``, stop early and fit temperatures on val (the calibration split
    is not touched: it sets the verdict thresholds once every choice is made)."""
    t = settings.train
    finetune = t.mode == "finetune"
    cfg = FusionConfig(
        fusion=settings.model.fusion,
        image_dim=prep.cache.encoder.dim,
        text_dim=prep.bank.shape[-1],
        hidden_dim=settings.model.hidden_dim,
        image_only=settings.model.text_source == "ids",
    )
    loop_cfg = TrainConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        patience=t.patience,
        seed=t.seed,
        device=str(prep.device),
        progress=progress,
    )
    encoder = prep.cache.encoder
    torch.manual_seed(t.seed)
    classifier = CrossModalClassifier(cfg)
    if finetune:
        encoder.freeze(t.trainable_stages)
        model = FineTuneModel(encoder, classifier)
        val_samples = prep.ds.split("val")
        if t.finetune_views and t.trainable_stages and encoder.splits_at_stages():
            n, where = t.trainable_stages, settings.cache_dir
            train_set, train_samples = prep.prefixes(train_samples, t.finetune_views, n, where, progress)
            val_set, val_samples = prep.prefixes(val_samples, 1, n, where, progress)
        else:
            p_tr, y_tr = prep.index(train_samples)
            p_va, y_va = prep.index(val_samples)
            train_set = ImageSet(train_samples, encoder, p_tr, y_tr, settings.max_image_pixels, True)
            val_set = ImageSet(val_samples, encoder, p_va, y_va, settings.max_image_pixels, False)
            loop_cfg.num_workers = 2
        loop_cfg.lr = min(t.lr, 3e-4)
    else:
        model = classifier
        train_set, train_samples = prep.features(train_samples, t.views, progress)
        val_set, val_samples = prep.features(prep.ds.split("val"), 1, progress)
    prep.ds.check_bad_share(settings.train.max_bad_share)
    keys = [(s.product, s.defect_type) for s in train_samples]
    val = val_set if len(val_set) else None
    history = train(model, prep.step(model), train_set, val, keys, loop_cfg)
    members, member_epochs = [classifier], [history["best_epoch"]]
    for k in range(1, 1 if finetune else t.heads):  # the same features, another seed
        seed = t.seed + 1000 * k
        torch.manual_seed(seed)
        member = CrossModalClassifier(cfg)
        h = train(member, prep.step(member), train_set, val, keys, dataclasses.replace(loop_cfg, seed=seed))
        members.append(member.eval())
        member_epochs.append(h["best_epoch"])
    head: Classifier = classifier
    if len(members) > 1:  # frozen only: each member at its own temperature, then the mean at its own
        for member in members:
            fit_temperatures(prep, member, member, val_set, loop_cfg.num_workers)
        head = model = ClassifierEnsemble.of(members)
    fit_temperatures(prep, model, head, val_set, loop_cfg.num_workers)
    spec = ClassifierSpec(
        backbone=encoder.name,
        input_size=encoder.input_size,
        mode=t.mode,
        trainable_stages=t.trainable_stages if finetune else 0,
        fusion=cfg,
        class_temperature=float(head.class_temperature),
        defect_temperature=float(head.defect_temperature),
        members=len(members),
        precision=precision_for(prep.device),  # what val and calibration score it with (ClassifierPart)
    )
    record = {
        **loop_cfg.to_dict(),
        **{k: v for k, v in history.items() if k != "history"},
        "epochs_run": len(history["history"]),
        "train_used": len(train_samples),
        "heads": len(members),
        "heads_best_epochs": member_epochs,
    }
    return TrainedClassifier(head.eval(), encoder.eval(), spec, record, finetune)


def fit_temperatures(
    prep: Prepared, model: torch.nn.Module, head: Classifier, val_set: TorchDataset, num_workers: int
) -> None:
    """Fit ``head``'s temperatures on val through ``model`` (the head itself, or the fine-tuned
    encoder with it)."""
    if not len(val_set):
        return
    loader = DataLoader(val_set, batch_size=128, num_workers=num_workers)
    pred = predict(model.eval(), prep.step(model), loader, prep.device)
    head.class_temperature.fill_(fit_temperature(pred["class_logits"], pred["target"]))
    defective = (pred["target"] != 0).float()
    head.defect_temperature.fill_(fit_temperature(pred["defect_logit"], defective, binary=True))


def _fit_fold(settings: Settings, prep: Prepared, keep: list[Sample]) -> Part:
    c = train_classifier(settings, prep, keep, progress=False)
    return ClassifierPart(c.model.to(prep.device), c.encoder, prep.text, prep.device, c.spec.precision)


def product_report(
    out: SplitOutputs, decision: Decision, image_only: Decision, val: SplitOutputs | None,
    calib: SplitOutputs | None, verdict: VerdictSettings,
) -> dict:  # fmt: skip
    """The product's metrics on one split: the station's decision, image-only, and each part alone."""
    m = decision_metrics(out, decision, calib=calib)
    m["image_only"] = decision_metrics(out, image_only, image_only=True, calib=calib)
    methods = {}
    fit = partial(fit_decision, val, calib, False, verdict.target_frr_of(out.product), verdict.warn_frr,
                  confidence=verdict.selection_confidence, pooling=verdict.pooling_of(out.product))  # fmt: skip
    classifier = {"classifier", "defect_head"} & set(out.scores)
    if classifier:  # the classifier alone: its better score, or both, as val chooses
        methods["classifier"] = decision_metrics(out, fit(allowed=classifier), calib=calib)
    if "anomaly" in out.scores:
        methods["anomaly"] = decision_metrics(out, fit(parts=["anomaly"]), calib=calib)
    if "segmentation" in out.scores:
        methods["segmentation"] = decision_metrics(out, fit(parts=["segmentation"]), calib=calib)
    if classifier and "anomaly" in out.scores:  # every score the product has, together
        methods["combined"] = decision_metrics(out, fit(parts=sorted(out.scores)), calib=calib)
    m["methods"] = methods
    px = pixel_auroc(out)
    if px is not None:
        m["pixel_auroc"] = px
    return m


def train_model(
    settings: Settings,
    roots: list[Path],
    out_dir: Path | None,
    products: list[str] | None = None,
    shots: int | None = None,
    progress: bool = True,
    prepared: Prepared | None = None,
) -> ModelCard:
    """Train the parts on train, choose on val, calibrate on the calibration split, report on
    test; save to ``out_dir`` when given. -> the model card."""
    started = time.perf_counter()
    t = settings.train
    prep = prepared or prepare(settings, roots, products, t.mode == "finetune")
    ds, device, v = prep.ds, prep.device, settings.verdict
    train_samples = ds.split("train")
    if shots:
        train_samples = limit_per_class(train_samples, shots, t.seed)
    if not train_samples and not ds.split(CALIBRATION):  # good-only products calibrate all their train parts
        raise DataError("no train-split images: every product needs labelled train images")
    parts: dict[str, Part] = {}
    trained = None
    if settings.model.classifier and any(s.is_defect for s in train_samples):
        trained = train_classifier(settings, prep, train_samples, progress)
        parts["classifier"] = ClassifierPart(
            trained.model.to(device), trained.encoder, prep.text, device, trained.spec.precision
        )
    # the banks' images, val and calibration parts are extracted once, not again when scored
    with remember_patch_features(settings.anomaly.memo_mb):
        anomaly = None
        if settings.anomaly.enabled:
            data = ds.with_train(train_samples)
            anomaly = fit_anomaly(
                settings.anomaly, data, v.target_frr_of, device, settings.max_image_pixels, progress,
                memo=prep.patch_memo, seed=t.seed,
            )  # fmt: skip
            if anomaly is not None:  # before the type heads: they read the region it finds
                fit_segmentation(anomaly, data, settings.anomaly, device, settings.max_image_pixels, t.seed, progress)
                if not refits_segmentation(settings):  # every train image's feature grid: free them now
                    anomaly.seg_cells.clear()
            if anomaly is not None and settings.anomaly.type_head:
                fit_type_heads(
                    anomaly, data, prep.text, device, settings.max_image_pixels, t.seed, progress,
                    settings.anomaly.type_head_mirrors_below,
                )  # fmt: skip
            if anomaly is not None:
                parts["anomaly"] = anomaly.part(prep.text, device)
        if not parts:
            raise DataError(
                "nothing to learn from: no defect images in train for the classifier and no product with "
                f"{settings.anomaly.min_good} good train images for a memory bank"
            )
        outputs: dict[str, dict[str, SplitOutputs | None]] = {}
        for split in ("val", CALIBRATION, "test"):
            outputs[split] = {}
            for m in prep.manuals:
                samples = [s for s in ds.split(split) if s.product == m.product]
                if split == CALIBRATION and anomaly is not None:  # each part scored by a bank that never saw it
                    folds = anomaly.fold_parts(m.product, prep.text, device)
                    out = collect_cross_fit(parts, folds, m, samples, settings.max_image_pixels, progress, ds.bad)
                else:
                    out = collect(parts, m, samples, settings.max_image_pixels, progress=progress, bad=ds.bad)
                outputs[split][m.product] = out if len(out.target) else None
        fit_fold = None
        if trained is not None:  # each fold's classifier trains as long as val let the full one
            epochs = min(t.epochs, trained.record["best_epoch"] + 1)
            fit_fold = partial(
                _fit_fold, settings.model_copy(update={"train": t.model_copy(update={"epochs": epochs})}), prep
            )
        oof = out_of_fold(settings, ds, prep.manuals, train_samples, fit_fold, anomaly, prep.text, device, progress)
        if anomaly is not None:
            anomaly.seg_cells.clear()
    products_card, metrics = {}, {"val": {}, "test": {}}
    classifier = parts.get("classifier")
    turner = classifier if isinstance(classifier, TypesOverTurns) and v.type_views > 1 else None
    for m in prep.manuals:
        val, cal = outputs["val"][m.product], outputs[CALIBRATION][m.product]
        if val is not None and turner is not None:  # val's defects choose whether types over turns name them better
            px = settings.max_image_pixels
            val = outputs["val"][m.product] = with_turned_types(val, turner, m, px, v.type_views, val.is_defect)
        # a classifier that saw none of the product's defects knows nothing to decide with
        learnt = any(x.product == m.product and x.is_defect for x in train_samples)
        allowed = {"classifier", "defect_head", "anomaly"} if learnt else {"anomaly"}  # its defect head neither
        if settings.anomaly.segmentation_decides:
            allowed.add("segmentation")
        extra = oof.get(m.product)
        spec = anomaly.specs.get(m.product) if anomaly else None
        seg = spec.segmentation if spec else None
        taught_by_labels = seg is not None and seg.taught_by == "labels"
        choose = partial(
            fit_decision,
            val,
            cal,
            allowed=allowed,
            train_defects=extra,
            confidence=v.selection_confidence,
            pooling=v.pooling_of(m.product),
            probation=frozenset({"segmentation"} if taught_by_labels else ()),
        )
        alpha = v.target_frr_of(m.product)
        decision = choose(False, alpha, v.warn_frr)
        image_only = choose(True, alpha, v.warn_frr)
        products_card[m.product] = product_card(m, decision, image_only, spec, cal, alpha)
        views = max(decision.type_views, image_only.type_views)
        for split in ("val", "test") if turner is not None and views > 1 else ():  # the types the reports read
            if (out := outputs[split][m.product]) is not None:
                rows = rows_typed(out, decision, image_only)
                if split == "val":
                    rows &= ~out.is_defect  # turned above, before the decision
                outputs[split][m.product] = with_turned_types(out, turner, m, settings.max_image_pixels, views, rows)
        for split in ("val", "test"):
            if outputs[split][m.product] is not None:
                metrics[split][m.product] = product_report(outputs[split][m.product], decision, image_only, val, cal, v)
    card = ModelCard(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        text_encoder=settings.model.text_encoder,
        text_source=settings.model.text_source,
        classifier=trained.spec if trained else None,
        anomaly_backbones=sorted(anomaly.extractors) if anomaly else [],
        type_heads=sorted(anomaly.heads) if anomaly else [],
        products=products_card,
        fallback=fallback_decision(),
        verdict=v.model_dump(),
        data={
            "fingerprint": ds.fingerprint(),
            "roots": [str(Path(r).resolve()) for r in roots],  # retraining starts from the same data
            "counts": _counts(ds.samples),
            "calibration_parts": prep.calibration,
            "train_used": len(train_samples),
            "shots": shots,
            "bad_rows": [str(b) for b in ds.bad[:50]],
            "bad_count": len(ds.bad),
        },
        train={**(trained.record if trained else {}), "seconds": round(time.perf_counter() - started, 1)},
        metrics=metrics,
    )
    if out_dir is not None:
        extra = None
        if trained is not None and trained.finetuned:
            extra = {f"encoder.{k}": v for k, v in trained.encoder.state_dict().items()}
        kept = keep_recorded_model(settings, out_dir)
        if kept and progress:
            print(f"the model that was in {out_dir} is recorded in the store: moved to {kept}")
        # good parts of every split but test: the reference says what production should look like
        ref = build_reference(prep.cache, [x for x in ds.samples if x.split != "test"], seed=t.seed)
        save_checkpoint(
            out_dir,
            card,
            trained.model.cpu() if trained else None,
            extra,
            anomaly.tensors() if anomaly else None,
            write_more=(lambda folder: save_reference(folder, ref)) if ref is not None else None,
        )
    return card


@dataclass(frozen=True)
class Evaluation:
    """A saved model judged on one split: per product the station's decision and the image-only
    one (``decision_metrics``, the card's metrics format), and the rows that could not be used."""

    model: str
    split: str
    data: list[str]
    bad_rows: list[str]
    metrics: dict[str, dict]


def evaluate_checkpoint(
    settings: Settings,
    model_dir: Path,
    roots: list[Path],
    split: str = "test",
    products: list[str] | None = None,
    progress: bool = True,
) -> Evaluation:
    """Metrics of a saved model on one split of the data, with the decisions in its card (products
    the model was not built for are judged as the station would: uncalibrated)."""
    device = resolve_device(settings.model.device)
    loaded = load_model(Path(model_dir), device, settings.cache_dir)
    ds = load_dataset(roots, products)
    out: dict = {}
    for product in ds.products():
        manual = ds.manuals[product]
        samples = [s for s in ds.split(split) if s.product == product]
        if not samples:
            continue
        info = loaded.card.products.get(product)
        views = max(info.decision.type_views, info.image_only.type_views) if info is not None else 1
        o = collect(loaded.parts, manual, samples, settings.max_image_pixels, progress=progress, bad=ds.bad)
        decision = info.decision if info else loaded.card.fallback
        image_only = info.image_only if info else loaded.card.fallback
        classifier = loaded.parts.get("classifier")
        if views > 1 and isinstance(classifier, TypesOverTurns):
            rows = rows_typed(o, decision, image_only)
            o = with_turned_types(o, classifier, manual, settings.max_image_pixels, views, rows)
        out[product] = decision_metrics(o, decision)
        out[product]["image_only"] = decision_metrics(o, image_only, image_only=True)
        px = pixel_auroc(o)
        if px is not None:
            out[product]["pixel_auroc"] = px
    if not out:
        raise DataError(f"no usable '{split}' images in {', '.join(map(str, roots))}")
    return Evaluation(str(model_dir), split, [str(r) for r in roots], [str(b) for b in ds.bad], out)
