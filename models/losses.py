"""Training loss as a standalone module: it takes outputs and targets, never a model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.types import ClassifierOutput


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over each row's real classes (padding is -inf); smoothing spreads only over real ones."""
    mask = torch.isfinite(logits)  # [B, C]
    logp = F.log_softmax(logits.float(), dim=-1).masked_fill(~mask, 0.0)  # [B, C]
    nll = -logp.gather(1, target.unsqueeze(1)).squeeze(1)  # [B]
    uniform = -logp.sum(1) / mask.sum(1)  # [B]
    return ((1 - smoothing) * nll + smoothing * uniform).mean()


class DefectLoss(nn.Module):
    """Cross-entropy over each product's classes plus BCE on the manual-free defect logit."""

    def __init__(self, defect_weight: float = 0.5, label_smoothing: float = 0.05) -> None:
        super().__init__()
        self.defect_weight, self.label_smoothing = defect_weight, label_smoothing

    def forward(self, out: ClassifierOutput, target: torch.Tensor, is_defect: torch.Tensor) -> torch.Tensor:
        ce = masked_cross_entropy(out.class_logits, target, self.label_smoothing)
        bce = F.binary_cross_entropy_with_logits(out.defect_logit.float(), is_defect.float())
        return ce + self.defect_weight * bce
