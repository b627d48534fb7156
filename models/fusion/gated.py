"""Gated multimodal unit (Arevalo et al., 2017): a learned gate mixes image and text per feature."""

from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import FUSIONS, Fusion, mlp
from models.types import FusionConfig


class GatedFusion(Fusion):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__(cfg)
        h = cfg.hidden_dim
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h))
        self.text_proj = nn.Linear(cfg.text_dim, h)
        self.gate = nn.Linear(2 * h, h)
        self.out = mlp(2 * h, 2 * h, h, cfg.dropout)

    def forward(self, tokens, pooled, text):
        C = text.shape[1]
        i = self.image_proj(pooled).unsqueeze(1).expand(-1, C, -1)  # [B, C, H]
        t = self.text_proj(text)  # [B, C, H]
        z = torch.sigmoid(self.gate(torch.cat([i, t], dim=-1)))  # [B, C, H], 1 = trust the image
        mixed = z * torch.tanh(i) + (1 - z) * torch.tanh(t)
        return self.out(torch.cat([mixed, i * t], dim=-1)), None  # [B, C, H]


@FUSIONS.register("gated")
def gated(cfg: FusionConfig) -> Fusion:
    return GatedFusion(cfg)
