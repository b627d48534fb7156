"""Low-rank multimodal fusion (Liu et al., 2018): the outer product of [image, 1] and [text, 1]
through a rank-R factorised weight tensor, without ever materialising the outer product."""

from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import FUSIONS, Fusion
from models.types import FusionConfig


class LowRankFusion(Fusion):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__(cfg)
        h, r = cfg.hidden_dim, cfg.rank
        self.image_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h))
        self.image_factor = nn.Parameter(torch.randn(r, h + 1, h) * (h + 1) ** -0.5)
        self.text_factor = nn.Parameter(torch.randn(r, cfg.text_dim + 1, h) * (cfg.text_dim + 1) ** -0.5)
        self.rank_weight = nn.Parameter(torch.full((r,), 1.0 / r))
        self.bias = nn.Parameter(torch.zeros(h))
        self.norm = nn.LayerNorm(h)

    def forward(self, tokens, pooled, text):
        B, C, _ = text.shape
        i = self.image_proj(pooled)  # [B, H]
        i = torch.cat([i, i.new_ones(B, 1)], dim=-1)  # [B, H+1]: the 1 keeps unimodal terms
        t = torch.cat([text, text.new_ones(B, C, 1)], dim=-1)  # [B, C, Dt+1]
        fi = torch.einsum("bd,rdh->brh", i, self.image_factor)  # [B, R, H]
        ft = torch.einsum("bcd,rdh->bcrh", t, self.text_factor)  # [B, C, R, H]
        fused = torch.einsum("brh,bcrh,r->bch", fi, ft, self.rank_weight) + self.bias  # [B, C, H]
        return self.norm(fused), None


@FUSIONS.register("low_rank")
def low_rank(cfg: FusionConfig) -> Fusion:
    return LowRankFusion(cfg)
