"""Late (decision-level) fusion: each modality has its own tower; they meet only at the score.

The fused vector is the element-wise product of the two unit-length embeddings, so a head
with equal weights reads out their cosine similarity (CLIP-style matching).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from models.fusion.base import FUSIONS, Fusion, mlp
from models.types import FusionConfig


class LateFusion(Fusion):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__(cfg)
        h = cfg.hidden_dim
        self.image_tower = nn.Sequential(nn.LayerNorm(cfg.image_dim), mlp(cfg.image_dim, 2 * h, h, cfg.dropout))
        self.text_tower = mlp(cfg.text_dim, 2 * h, h, cfg.dropout)

    def forward(self, tokens, pooled, text):
        i = F.normalize(self.image_tower(pooled), dim=-1).unsqueeze(1)  # [B, 1, H]
        t = F.normalize(self.text_tower(text), dim=-1)  # [B, C, H]
        return i * t * self.cfg.hidden_dim**0.5, None  # [B, C, H]; scaled so logits start O(1)


@FUSIONS.register("late")
def late(cfg: FusionConfig) -> Fusion:
    return LateFusion(cfg)
