"""Training loop: AdamW, AMP (bf16 on CUDA, fp32 on CPU), class-balanced sampling, early
stopping on val macro-F1, fixed seeds. It trains anything whose forward maps a batch dict to
a ClassifierOutput, so frozen cached features and end-to-end fine-tuning share it."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from tqdm.auto import tqdm

from models.inference import autocast, precision_for
from models.losses import DefectLoss
from models.types import ClassifierOutput

Batch = dict[str, torch.Tensor]
StepFn = Callable[[Batch], ClassifierOutput]


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    patience: int = 8
    seed: int = 0
    device: str = "cpu"
    balanced: bool = True
    defect_weight: float = 0.5
    label_smoothing: float = 0.05
    num_workers: int = 0
    progress: bool = True
    min_steps_per_epoch: int = 25  # few-shot sets would otherwise take a handful of steps in all

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def balanced_weights(keys: list[tuple]) -> torch.Tensor:
    """One weight per sample so that every (product, class) is drawn equally often."""
    counts: dict[tuple, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    return torch.tensor([1.0 / counts[k] for k in keys], dtype=torch.double)


def _autocast(device: torch.device) -> torch.autocast:
    return autocast(precision_for(device), device)


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()  # not inference_mode: calibration fits temperatures on these outputs
def predict(model: nn.Module, step: StepFn, loader: DataLoader, device: torch.device) -> dict[str, torch.Tensor]:
    """Run ``step`` over ``loader`` -> concatenated class_logits, defect_logit, target, product."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"class_logits": [], "defect_logit": [], "target": [], "product": []}
    for batch in loader:
        batch = _to(batch, device)
        with _autocast(device):
            out = step(batch)
        parts["class_logits"].append(out.class_logits.float().cpu())
        parts["defect_logit"].append(out.defect_logit.float().cpu())
        parts["target"].append(batch["target"].cpu())
        parts["product"].append(batch["product"].cpu())
    return {k: _pad_cat(v) for k, v in parts.items()}


def _pad_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    if tensors[0].ndim == 2:  # class logits: batches may be padded to different class counts
        width = max(t.shape[1] for t in tensors)
        tensors = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=float("-inf")) for t in tensors]
    return torch.cat(tensors)


def mean_product_macro_f1(pred: dict[str, torch.Tensor]) -> float:
    """Mean over products of macro-F1: the early-stopping criterion (every product counts equally)."""
    y_pred = pred["class_logits"].argmax(1).numpy()
    y_true, product = pred["target"].numpy(), pred["product"].numpy()
    scores = [
        f1_score(y_true[product == p], y_pred[product == p], average="macro", labels=sorted(set(y_true[product == p])))
        for p in np.unique(product)
    ]
    return float(np.mean(scores)) if scores else 0.0


def train(
    model: nn.Module,
    step: StepFn,
    train_set: Dataset,
    val_set: Dataset | None,
    sample_keys: list[tuple],
    cfg: TrainConfig,
    collate: Callable | None = None,
) -> dict:
    """Train ``model`` in place and restore its best-on-val weights. Returns the history."""
    seed_everything(cfg.seed)
    # late in a run, decayed gradients and Adam moments fall below 1e-38, where x86 arithmetic
    # turns microcode-slow: epochs went from 1.5 to 5 s on the demo's classifier; flushed, they stay at 1.5
    torch.set_flush_denormal(True)
    device = torch.device(cfg.device)
    model.to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    draws = max(len(sample_keys), cfg.min_steps_per_epoch * cfg.batch_size)
    weights = balanced_weights(sample_keys) if cfg.balanced else torch.ones(len(sample_keys), dtype=torch.double)
    sampler = WeightedRandomSampler(weights, draws, replacement=True, generator=generator)
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.num_workers,
        drop_last=True,
    )
    val_loader = (
        DataLoader(val_set, batch_size=256, collate_fn=collate, num_workers=cfg.num_workers) if val_set else None
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * len(loader), pct_start=0.1)
    loss_fn = DefectLoss(cfg.defect_weight, cfg.label_smoothing)
    best_score, best_state, best_epoch, stale = -1.0, None, 0, 0
    history: list[dict] = []
    bar = tqdm(range(cfg.epochs), desc="train", disable=not cfg.progress, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            batch = _to(batch, device)
            with _autocast(device):
                out = step(batch)
            loss = loss_fn(out, batch["target"], batch["is_defect"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(batch["target"]), count + len(batch["target"])
        record = {"epoch": epoch, "train_loss": total / max(count, 1)}
        if val_loader is not None:
            record["val_macro_f1"] = mean_product_macro_f1(predict(model, step, val_loader, device))
        history.append(record)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        score = record.get("val_macro_f1", -record["train_loss"])
        if score > best_score + 1e-4:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return {"history": history, "best_epoch": best_epoch, "best_val_score": best_score}
