"""The one interface every fusion variant implements.

forward(tokens [B, N, Di], pooled [B, Di], text [B, C, Dt]) -> (fused [B, C, H], attention [B, C, N] | None)

``text`` holds one embedding per class of each image's product (``ok`` plus the defect types
its manual describes, padded to C), so a single model scores products with different class
lists: each class is a (image, description) pair, never a fixed output unit.
"""

from __future__ import annotations

import torch
from torch import nn

from models.registry import Registry
from models.types import FusionConfig


class Fusion(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.hidden_dim

    def forward(
        self, tokens: torch.Tensor, pooled: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


FUSIONS: Registry[Fusion] = Registry("fusion")
