"""Onboard a product onto a running model: its manual and a few good images become a memory
bank and a calibrated threshold, added to a copy of the model (a new model version, so the
store's history and a rollback stay exact). No defect images are needed: a part that differs
from every good one is rejected, whatever the defect. Defect images, when given, are only
used to report how many the new threshold catches.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from inspector.anomaly_fit import fit_anomaly
from inspector.checkpoint import load_model, model_name, resolve_device
from inspector.dataset import CALIBRATION, Dataset, load_product
from inspector.decisions import fit_decision, product_card
from inspector.errors import DataError
from inspector.evaluation import decision_metrics
from inspector.outputs import collect, collect_cross_fit
from inspector.settings import Settings
from models.export import ANOMALY, CARD

MIN_GOOD = 10


@dataclass
class Onboarded:
    model_dir: Path
    product: str
    good: int
    calibration: int
    guaranteed: bool
    seconds: float
    defects: int  # defect images given
    caught: int  # of them, rejected at the new threshold


def _dataset(folder: Path) -> Dataset:
    """Every good image for the bank and calibration, every defect image as the check."""
    ds = load_product(folder)
    if ds.bad:
        raise DataError(f"{folder}: {len(ds.bad)} unusable row(s), e.g. {ds.bad[0]}")
    ds.samples = [replace(s, split="val" if s.is_defect else "train") for s in ds.samples]
    product = ds.products()[0]
    good = sum(not s.is_defect for s in ds.samples)
    if good < MIN_GOOD:
        raise DataError(f"{product}: {good} good image(s) in {folder}; onboarding needs at least {MIN_GOOD}")
    return ds


def onboard(settings: Settings, folder: Path, base_dir: Path, out_dir: Path | None = None, progress: bool = True):
    """Build ``folder``'s product into a copy of the model at ``base_dir``. -> Onboarded."""
    start = time.perf_counter()
    device = resolve_device(settings.model.device)
    ds = _dataset(Path(folder))
    product, manual = ds.products()[0], ds.manuals[ds.products()[0]]
    v = settings.verdict
    alpha = v.target_frr_of(product)
    ds.hold_out_calibration(alpha, v.calibration_share)
    base = load_model(Path(base_dir), device, settings.cache_dir)
    build = fit_anomaly(
        settings.anomaly, ds, alpha, device, settings.max_image_pixels, progress, seed=settings.train.seed
    )
    if build is None or product not in build.specs:
        raise DataError(f"{product}: too few good images for a bank")
    spec = build.specs[product]
    old = base.parts.get("anomaly")
    if old is not None and spec.view.backbone in old.type_heads:  # the model's type head reads any manual
        build.heads[spec.view.backbone] = old.type_heads[spec.view.backbone]
    part = build.part(base.text, device)
    parts = {"anomaly": part}
    folds = build.fold_parts(product, base.text, device)
    calib = collect_cross_fit(parts, folds, manual, ds.split(CALIBRATION), settings.max_image_pixels)
    check = collect(parts, manual, ds.split("val"), settings.max_image_pixels) if ds.split("val") else None
    decision = fit_decision(None, calib, False, alpha, v.warn_frr, parts=["anomaly"])
    # the region type head (or else the classifier) names defects from the new manual's words, zero-shot
    typing = "anomaly" if spec.view.backbone in part.type_heads else "classifier"
    decision = decision.model_copy(update={"typing": typing, "selected_on": "onboarded: the anomaly part alone"})
    card = base.card
    products = {**card.products, product: product_card(manual, decision, decision, spec, calib, alpha)}
    report = {"calibration": decision_metrics(calib, decision)}
    caught = 0
    if check is not None and len(check.target):
        report["defects"] = decision_metrics(check, decision)
        score = check.scores["anomaly"]
        caught = int((score > decision.thresholds.reject).sum())
    new = card.model_copy(
        update={
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "anomaly_backbones": sorted({*card.anomaly_backbones, spec.view.backbone}),
            "products": products,
            "metrics": {**card.metrics, "onboarded": {**card.metrics.get("onboarded", {}), product: report}},
        }
    )
    tensors = {}
    if (Path(base_dir) / ANOMALY).exists():
        tensors = load_file(Path(base_dir) / ANOMALY)
    # the product's old bank and segmentation head go: its new card names neither
    tensors = {
        k: v
        for k, v in tensors.items()
        if not (k.startswith("bank/") and k.endswith(f"/{product}")) and not k.startswith(f"seg/{product}/")
    }
    tensors |= {k: v for k, v in build.tensors().items() if k.startswith("bank/")}
    out = Path(out_dir) if out_dir else settings.models_dir / f"onboard-{product}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    _write(Path(base_dir), out, new.to_json(), tensors)
    return Onboarded(
        out, product, sum(not s.is_defect for s in ds.samples), len(calib.target),
        decision.thresholds.guaranteed, time.perf_counter() - start,
        0 if check is None else len(check.target), caught,
    )  # fmt: skip


def _write(base: Path, out: Path, card_json: str, tensors: dict[str, torch.Tensor]) -> None:
    """A copy of ``base`` with a new card and banks, swapped in whole (never half a model)."""
    if out.exists():
        raise DataError(f"{out} exists; choose another --out")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(base, tmp)
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / ANOMALY)
        (tmp / CARD).write_text(card_json)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def register(settings: Settings, model_dir: Path, promote: bool, actor: str) -> tuple[int, str]:
    """Record the onboarded model (and the product's manual) in the store; promote it to champion
    so a running station switches to it. -> (model version id, name)."""
    from inspector.engine import Engine
    from inspector.store.migrate import upgrade
    from inspector.store.repo import add_manual_version, ensure_product, promote_model, register_model
    from inspector.store.session import make_engine, session_factory

    upgrade(settings.database_url)
    engine = Engine(model_dir, "cpu", settings.max_image_pixels, settings.cache_dir)
    db = make_engine(settings.database_url)
    try:
        with session_factory(db)() as s:
            mv = register_model(s, engine.version, str(model_dir.resolve()), engine.card.summary(), engine.card.metrics)
            for pid, info in engine.card.products.items():
                ensure_product(s, pid, info.name)
                if info.manual:
                    add_manual_version(s, pid, info.manual, actor)
            if promote:
                promote_model(s, mv.id, actor)
            s.commit()
            return mv.id, model_name(model_dir, engine.card)
    finally:
        db.dispose()
