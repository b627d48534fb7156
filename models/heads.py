"""Heads: score each (image, class description) pair, and give a defect probability that
still works when the product's manual is missing."""

from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import mlp


class ClassScorer(nn.Module):
    """fused [B, C, H] -> logits [B, C]; padded classes get -inf so softmax ignores them."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden_dim, 1)

    def forward(self, fused: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.score(fused).squeeze(-1).masked_fill(~mask, float("-inf"))


class DefectHead(nn.Module):
    """pooled [B, Di] + product context [B, Dt] -> defect logit [B].

    The context is the mean embedding of the product's manual. Modality dropout swaps it for a
    learned "no manual" vector during training, so the same head answers for a product whose
    manual is missing (the verdict is then flagged image-only).
    """

    def __init__(self, image_dim: int, text_dim: int, hidden_dim: int, dropout: float, text_dropout: float) -> None:
        super().__init__()
        self.text_dropout = text_dropout
        self.no_text = nn.Parameter(torch.zeros(text_dim))
        self.norm = nn.LayerNorm(image_dim)
        self.mlp = mlp(image_dim + text_dim, hidden_dim, 1, dropout)

    def forward(self, pooled: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        B = pooled.shape[0]
        missing = self.no_text.expand(B, -1)
        if context is None:
            context = missing
        elif self.training and self.text_dropout > 0:
            drop = torch.rand(B, 1, device=pooled.device) < self.text_dropout  # [B, 1]
            context = torch.where(drop, missing, context)
        return self.mlp(torch.cat([self.norm(pooled), context], dim=-1)).squeeze(-1)
