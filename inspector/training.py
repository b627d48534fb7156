"""Train, calibrate and evaluate the classifier on a dataset: the engine behind
``inspector train`` and ``inspector eval``. The ML itself lives in ``models``; this module
feeds it files, manuals and caches, and writes the checkpoint with its model card."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from inspector.checkpoint import keep_recorded_model, load_model, resolve_device
from inspector.dataset import Dataset, Sample, load_dataset
from inspector.errors import DataError
from inspector.features import FeatureCache, Features, view_tensor
from inspector.manual import Manual
from inspector.reference import build_reference, save_reference
from inspector.settings import Settings
from inspector.text_bank import TextBank
from models import (
    CrossModalClassifier,
    FineTuneModel,
    FusionConfig,
    Thresholds,
    calibrate_thresholds,
    create_image_encoder,
    create_text_encoder,
    defect_score,
    fit_temperature,
    product_metrics,
    save_checkpoint,
)
from models.training.loop import TrainConfig, predict, train


class FeatureSet(TorchDataset):
    """Cached features of labelled samples; each item draws one of the cached views."""

    def __init__(self, views: list[Features], product: torch.Tensor, target: torch.Tensor) -> None:
        self.views, self.product, self.target = views, product, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v = self.views[random.randrange(len(self.views))]
        return {
            "tokens": v.tokens[i],
            "pooled": v.pooled[i],
            "product": self.product[i],
            "target": self.target[i],
            "is_defect": self.target[i] != 0,
        }


class ImageSet(TorchDataset):
    """Decoded images for end-to-end fine-tuning (augmented when ``train``)."""

    def __init__(
        self, samples: list[Sample], encoder, product: torch.Tensor, target: torch.Tensor, max_pixels: int, train: bool
    ) -> None:
        self.samples, self.encoder, self.product, self.target = samples, encoder, product, target
        self.max_pixels, self.train = max_pixels, train

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        view = random.randrange(1, 1_000_000) if self.train else 0  # a fresh augmentation every epoch
        return {
            "image": view_tensor(self.samples[i].path, self.encoder, view, self.max_pixels),
            "product": self.product[i],
            "target": self.target[i],
            "is_defect": self.target[i] != 0,
        }


@dataclass
class Prepared:
    """Everything training and evaluation need, derived once from settings and data."""

    ds: Dataset
    manuals: list[Manual]
    device: torch.device
    cache: FeatureCache
    bank: torch.Tensor  # [P, Cmax, Dt]
    bank_mask: torch.Tensor  # [P, Cmax]
    _memo: dict = field(default_factory=dict)  # feature sets already read: benchmarks train many models

    def index(self, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        pos = {m.product: i for i, m in enumerate(self.manuals)}
        product = torch.tensor([pos[s.product] for s in samples], dtype=torch.long)
        target = torch.tensor([self.manuals[pos[s.product]].classes.index(s.defect_type) for s in samples])
        return product, target

    def features(self, samples: list[Sample], views: int, progress: bool) -> tuple[FeatureSet, list[Sample]]:
        key = (tuple(s.path for s in samples), views)
        if key not in self._memo:
            self._memo[key] = self._features(samples, views, progress)
        fs, kept = self._memo[key]
        return FeatureSet(fs.views, fs.product, fs.target), kept

    def _features(self, samples: list[Sample], views: int, progress: bool) -> tuple[FeatureSet, list[Sample]]:
        extracted = []
        for v in range(views):
            feats, bad = self.cache.extract(samples, v, progress=progress)
            if v == 0:
                self.ds.bad.extend(bad)
                kept = feats.kept
            extracted.append(feats)
        samples = [samples[i] for i in kept]
        product, target = self.index(samples)
        return FeatureSet(extracted, product, target), samples

    def step(self, model):
        def run(b):
            text, mask = self.bank[b["product"]], self.bank_mask[b["product"]]
            if "image" in b:
                return model(b["image"], text, mask)
            return model(b["tokens"].float(), b["pooled"].float(), text, mask)

        return run


def prepare(
    settings: Settings, roots: list[Path], products: list[str] | None = None, finetune: bool = False
) -> Prepared:
    ds = load_dataset(roots, products)
    ds.check_bad_share(settings.train.max_bad_share)
    device = resolve_device(settings.model.device)
    encoder = create_image_encoder(settings.model.backbone)
    text_encoder = create_text_encoder(settings.model.text_encoder) if settings.model.text_source == "manual" else None
    dim = text_encoder.dim if text_encoder else 384
    bank = TextBank(
        settings.model.text_encoder,
        (lambda: text_encoder) if text_encoder is not None else None,
        dim,
        settings.cache_dir,
        settings.model.text_source,
    )
    manuals = [ds.manuals[p] for p in ds.products()]
    bank_t, mask_t = bank.padded(manuals)
    cache = FeatureCache(encoder, None if finetune else settings.cache_dir, device, settings.max_image_pixels)
    return Prepared(ds, manuals, device, cache, bank_t.to(device), mask_t.to(device))


def limit_per_class(samples: list[Sample], k: int, seed: int) -> list[Sample]:
    """At most ``k`` samples of each (product, class), drawn reproducibly: the low-data setting."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.product, s.defect_type), []).append(s)
    out = []
    for key in sorted(groups):
        g = groups[key]
        out.extend(rng.sample(g, min(k, len(g))))
    return out


def _scores(model: CrossModalClassifier, pred: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> calibrated class probs [M, C], fused defect score [M], image-only defect score [M]."""
    probs = torch.softmax(pred["class_logits"] / model.class_temperature.cpu(), dim=-1)
    fused = defect_score(pred["class_logits"], model.class_temperature.cpu())
    image_only = torch.sigmoid(pred["defect_logit"] / model.defect_temperature.cpu())
    return probs, fused, image_only


# Without good parts there is no false-reject rate to hold: reject on the calibrated
# probability alone (P(defect) > 0.5), send 0.3-0.5 to review, and say so in the card.
UNCALIBRATED = Thresholds(warn=0.3, reject=0.5, target_frr=0.0, n_good=0, guaranteed=False).to_dict()


def calibrate(model: CrossModalClassifier, pred: dict, manuals: list[Manual], settings: Settings) -> dict:
    """Fit temperatures and per-product verdict thresholds on val predictions -> card section."""
    model.class_temperature.fill_(fit_temperature(pred["class_logits"], pred["target"]))
    model.defect_temperature.fill_(fit_temperature(pred["defect_logit"], (pred["target"] != 0).float(), binary=True))
    _, fused, image_only = _scores(model, pred)
    v = settings.verdict
    good = (pred["target"] == 0).numpy()
    out = {
        "class_temperature": float(model.class_temperature),
        "defect_temperature": float(model.defect_temperature),
        "fallback": UNCALIBRATED,
        "image_only_fallback": UNCALIBRATED,
        "products": {},
    }
    for p, m in enumerate(manuals):
        rows = (pred["product"] == p).numpy() & good
        if rows.sum() == 0:
            out["products"][m.product] = {
                "thresholds": UNCALIBRATED,
                "image_only": UNCALIBRATED,
                "calibrated_on": "no good parts in val: P(defect) > 0.5 rejects",
            }
            continue
        out["products"][m.product] = {
            "thresholds": calibrate_thresholds(fused.numpy()[rows], v.target_frr, v.warn_frr).to_dict(),
            "image_only": calibrate_thresholds(image_only.numpy()[rows], v.target_frr, v.warn_frr).to_dict(),
            "calibrated_on": f"{int(rows.sum())} good parts of val",
        }
    return out


def evaluate(model: CrossModalClassifier, pred: dict, manuals: list[Manual], calibration: dict) -> dict:
    """Per-product metrics of calibrated predictions."""
    probs, fused, image_only = _scores(model, pred)
    out = {}
    for p, m in enumerate(manuals):
        rows = (pred["product"] == p).numpy()
        if not rows.any():
            continue
        th = calibration["products"][m.product]["thresholds"]
        C = len(m.classes)
        metrics = product_metrics(
            m.classes,
            pred["target"].numpy()[rows],
            probs[rows, :C].numpy(),
            fused.numpy()[rows],
            th["reject"],
            th["warn"],
            th["target_frr"],
        )
        truth = pred["target"].numpy()[rows] != 0
        if truth.any() and (~truth).any():
            from sklearn.metrics import roc_auc_score

            metrics["image_only_auroc"] = float(roc_auc_score(truth, image_only.numpy()[rows]))
        out[m.product] = metrics
    return out


def _counts(samples: list[Sample]) -> dict:
    c = Counter((s.split, s.product, s.defect_type) for s in samples)
    out: dict = {}
    for (split, product, defect), n in sorted(c.items()):
        out.setdefault(split, {}).setdefault(product, {})[defect] = n
    return out


def train_model(
    settings: Settings,
    roots: list[Path],
    out_dir: Path | None,
    products: list[str] | None = None,
    shots: int | None = None,
    progress: bool = True,
    prepared: Prepared | None = None,
) -> dict:
    """Train on train, stop early and calibrate on val, report on test; save if ``out_dir``. -> card."""
    t = settings.train
    finetune = t.mode == "finetune"
    prep = prepared or prepare(settings, roots, products, finetune)
    train_samples = prep.ds.split("train")
    if shots:
        train_samples = limit_per_class(train_samples, shots, t.seed)
    if not train_samples:
        raise DataError("no train-split images: every product needs labelled train images")
    cfg = FusionConfig(
        fusion=settings.model.fusion,
        image_dim=prep.cache.encoder.dim,
        text_dim=prep.bank.shape[-1],
        hidden_dim=settings.model.hidden_dim,
        image_only=settings.model.text_source == "ids",
    )
    torch.manual_seed(t.seed)
    classifier = CrossModalClassifier(cfg)
    loop_cfg = TrainConfig(
        epochs=t.epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        patience=t.patience,
        seed=t.seed,
        device=str(prep.device),
        progress=progress,
    )
    if finetune:
        encoder = prep.cache.encoder
        encoder.freeze(t.trainable_stages)
        model = FineTuneModel(encoder, classifier)
        p_tr, y_tr = prep.index(train_samples)
        val_samples = prep.ds.split("val")
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
    history = train(model, prep.step(model), train_set, val_set if len(val_set) else None, keys, loop_cfg)

    step = prep.step(model)
    model.eval()
    val_pred = predict(model, step, DataLoader(val_set, batch_size=128, num_workers=loop_cfg.num_workers), prep.device)
    classifier.cpu()
    calibration = calibrate(classifier, val_pred, prep.manuals, settings)
    classifier.to(prep.device)
    if finetune:
        p_te, y_te = prep.index(prep.ds.split("test"))
        test_set = ImageSet(prep.ds.split("test"), prep.cache.encoder, p_te, y_te, settings.max_image_pixels, False)
    else:
        test_set, _ = prep.features(prep.ds.split("test"), 1, progress)
    metrics: dict = {}
    if len(test_set):
        test_loader = DataLoader(test_set, batch_size=128, num_workers=loop_cfg.num_workers)
        test_pred = predict(model, step, test_loader, prep.device)
        metrics["test"] = evaluate(classifier, test_pred, prep.manuals, calibration)
    metrics["val"] = evaluate(classifier, val_pred, prep.manuals, calibration)
    enc = prep.cache.encoder
    card = {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backbone": enc.name,
        "input_size": enc.input_size,
        "text_encoder": settings.model.text_encoder,
        "text_source": settings.model.text_source,
        "mode": t.mode,
        "trainable_stages": t.trainable_stages if finetune else 0,
        "products": {
            m.product: {
                "name": m.name,
                "classes": m.classes,
                "manual_sha256": m.sha256,
                "manual_version": m.version,
                "manual": m.text,
                **calibration["products"][m.product],
            }
            for m in prep.manuals
        },
        "calibration": {k: v for k, v in calibration.items() if k != "products"},
        "verdict": settings.verdict.model_dump(),
        "data": {
            "fingerprint": prep.ds.fingerprint(),
            "roots": [str(Path(r).resolve()) for r in roots],  # retraining starts from the same data
            "counts": _counts(prep.ds.samples),
            "train_used": len(train_samples),
            "shots": shots,
            "bad_rows": [str(b) for b in prep.ds.bad[:50]],
            "bad_count": len(prep.ds.bad),
        },
        "train": {
            **loop_cfg.to_dict(),
            **{k: v for k, v in history.items() if k != "history"},
            "epochs_run": len(history["history"]),
        },
        "metrics": metrics,
    }
    if out_dir is not None:
        extra = {f"encoder.{k}": v for k, v in enc.state_dict().items()} if finetune else None
        kept = keep_recorded_model(settings, out_dir)
        if kept and progress:
            print(f"the model that was in {out_dir} is recorded in the store: moved to {kept}")
        save_checkpoint(out_dir, classifier.cpu(), card, extra)
        ref = build_reference(prep.cache, prep.ds.split("train") + prep.ds.split("val"), seed=t.seed)
        if ref is not None:
            save_reference(out_dir, ref)
    return card


def evaluate_checkpoint(
    settings: Settings,
    model_dir: Path,
    roots: list[Path],
    split: str = "test",
    products: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Metrics of a saved model on one split of the data, using the thresholds in its card."""
    device = resolve_device(settings.model.device)
    loaded = load_model(Path(model_dir), device, settings.cache_dir)
    model, card = loaded.model, loaded.card
    ds = load_dataset(roots, products)
    manuals = [ds.manuals[p] for p in ds.products()]
    bank_t, mask_t = loaded.bank.padded(manuals)
    cache_dir = None if loaded.finetuned else settings.cache_dir
    cache = FeatureCache(loaded.encoder, cache_dir, device, settings.max_image_pixels)
    prep = Prepared(ds, manuals, device, cache, bank_t.to(device), mask_t.to(device))
    fs, _ = prep.features(ds.split(split), 1, progress)
    if not len(fs):
        raise DataError(f"no usable '{split}' images in {', '.join(map(str, roots))}")
    pred = predict(model, prep.step(model), DataLoader(fs, batch_size=128), device)
    model.cpu()
    fallback = {"thresholds": card["calibration"]["fallback"], "image_only": card["calibration"]["image_only_fallback"]}
    calibration = {"products": {m.product: card["products"].get(m.product, fallback) for m in manuals}}
    return {
        "model": str(model_dir),
        "split": split,
        "data": [str(r) for r in roots],
        "bad_rows": [str(b) for b in ds.bad],
        "metrics": evaluate(model, pred, manuals, calibration),
    }
