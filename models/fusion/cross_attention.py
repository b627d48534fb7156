"""Cross-attention: each defect description is a query that looks for its evidence among the
image's patch tokens. The attention weights double as a heatmap of where the model looked."""

from __future__ import annotations

import torch
from torch import nn

from models.fusion.base import FUSIONS, Fusion, mlp
from models.types import FusionConfig


class CrossAttentionFusion(Fusion):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__(cfg)
        h = cfg.hidden_dim
        self.token_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h))
        self.pooled_proj = nn.Sequential(nn.LayerNorm(cfg.image_dim), nn.Linear(cfg.image_dim, h))
        self.query_proj = nn.Linear(cfg.text_dim, h)
        self.attn = nn.MultiheadAttention(h, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.norm = nn.LayerNorm(h)
        self.ffn = mlp(2 * h, 2 * h, h, cfg.dropout)

    def forward(self, tokens, pooled, text):
        kv = self.token_proj(tokens)  # [B, N, H]
        q = self.query_proj(text) + self.pooled_proj(pooled).unsqueeze(1)  # [B, C, H]: description + global view
        found, weights = self.attn(q, kv, kv, need_weights=True, average_attn_weights=True)  # [B, C, H], [B, C, N]
        x = self.norm(q + found)
        return x + self.ffn(torch.cat([x, q * found], dim=-1)), weights  # [B, C, H]


@FUSIONS.register("cross_attention")
def cross_attention(cfg: FusionConfig) -> Fusion:
    return CrossAttentionFusion(cfg)
