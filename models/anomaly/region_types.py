"""Region-aware defect typing: the defect type is read from where the anomaly map points,
at the resolution of the patch grid, not from the whole image squeezed into one vector (a
5-pixel crack on a 600-pixel tile is a few cells of the grid and nothing of a global pool).

The head scores the pooled region against each defect description of the product's manual,
so one head serves every product and a new defect type is a new description.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def region_pool(features: torch.Tensor, amap: torch.Tensor, sharpness: float = 0.1) -> torch.Tensor:
    """features [B, D, h, w], anomaly map [B, h, w] -> [B, 2D]: map-weighted region ++ global mean.

    The weights are a softmax of the map relative to its own range, so they concentrate on the
    most anomalous cells whatever the product's score units (``sharpness``: smaller = tighter).
    """
    f = features.flatten(2).float()  # [B, D, N]
    a = amap.flatten(1).float()  # [B, N]
    top = a.max(1, keepdim=True).values
    spread = (top - a.median(1, keepdim=True).values).clamp(min=1e-6)
    w = torch.softmax((a - top) / (sharpness * spread), dim=1)  # [B, N]
    region = torch.einsum("bdn,bn->bd", f, w)
    return torch.cat([region, f.mean(2)], dim=1)


def mirrors(view: torch.Tensor) -> list[torch.Tensor]:
    """[C, H, W] -> the view mirrored left-right, top-bottom and both (= turned 180 degrees).

    Quarter turns are left out: they swap a non-square part's sides, and on magnetic-tile they
    taught the head nothing that val could see."""
    return [view.flip(-1), view.flip(-2), view.flip(-1).flip(-2)]


class RegionTypeHead(nn.Module):
    """pooled region [B, 2D] x defect descriptions [T, Dt] -> logits [B, T] (cosine x learned scale)."""

    def __init__(self, feat_dim: int, text_dim: int, hidden: int = 256, sharpness: float = 0.1) -> None:
        super().__init__()
        self.feat_dim, self.text_dim, self.sharpness = feat_dim, text_dim, sharpness
        self.image = nn.Sequential(
            nn.LayerNorm(2 * feat_dim), nn.Linear(2 * feat_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        self.text = nn.Linear(text_dim, hidden)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, pooled: torch.Tensor, text: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """pooled [B, 2D], text [B, T, Dt] (each image's product's types), mask [B, T] -> logits [B, T]."""
        img = F.normalize(self.image(pooled), dim=-1)  # [B, H]
        txt = F.normalize(self.text(text), dim=-1)  # [B, T, H]
        logits = self.logit_scale.exp().clamp(max=100) * torch.einsum("bh,bth->bt", img, txt)
        return logits if mask is None else logits.masked_fill(~mask, float("-inf"))

    def probs(self, features: torch.Tensor, amap: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """features [B, D, h, w], amap [B, h, w], one product's types [T, Dt] -> [B, T]."""
        pooled = region_pool(features, amap, self.sharpness)
        return torch.softmax(self(pooled, text.expand(len(pooled), -1, -1)).float(), -1)
