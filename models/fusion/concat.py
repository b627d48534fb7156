"""Early fusion: concatenate image, description and their product, then an MLP."""

from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import FUSIONS, Fusion, mlp
from models.types import FusionConfig


class ConcatFusion(Fusion):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__(cfg)
        h = cfg.hidden_dim
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h))
        self.text_proj = nn.Linear(cfg.text_dim, h)
        self.mlp = mlp(3 * h, 2 * h, h, cfg.dropout)

    def forward(self, tokens, pooled, text):
        C = text.shape[1]
        i = self.image_proj(pooled).unsqueeze(1).expand(-1, C, -1)  # [B, C, H]
        t = self.text_proj(text)  # [B, C, H]
        return self.mlp(torch.cat([i, t, i * t], dim=-1)), None  # [B, C, H]


@FUSIONS.register("concat")
def concat(cfg: FusionConfig) -> Fusion:
    return ConcatFusion(cfg)
