"""Defect segmentation learnt from masks, on the anomaly branch's patch features.

A memory bank only knows good parts: it flags what is unlike them, and on magnetic tiles that
includes the odd good tile's grain while a faint crack stays close to good texture (pixel
AUROC 0.82 on val). Where a product ships defect masks, a small convolutional head on the
same frozen features learns what its defects look like cell by cell (pixel AUROC 0.98 on the
same val tiles). It adds to the bank, never replaces it: a defect type without masks still
shows as an anomaly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

POSITIVE = 0.25  # a grid cell at least this much covered by the mask is defective; barely touched cells are left out


class SegmentationHead(nn.Module):
    """patch features [B, D, h, w] -> defect logits [B, h, w].

    Dilated 3x3 convolutions see about 13 x 13 cells (100 px at stride 8): enough context to
    tell a crack from the grain around it, little enough to stay on the part's own surface.
    """

    def __init__(self, dim: int, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.dim = dim
        # features standardised by the train images' statistics (kept in the checkpoint)
        self.register_buffer("mean", torch.zeros(1, dim, 1, 1))
        self.register_buffer("std", torch.ones(1, dim, 1, 1))
        self.net = nn.Sequential(
            nn.Dropout2d(dropout),
            nn.Conv2d(dim, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=4, dilation=4),
            nn.GELU(),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features.float() - self.mean) / self.std)[:, 0]


def mask_to_grid(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """bool mask [H, W] -> share of each grid cell it covers [h, w]."""
    return F.interpolate(mask[None, None].float(), size=size, mode="area")[0, 0]


def segmentation_loss(logits: torch.Tensor, coverage: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-cell BCE, defective and good cells weighed equally (defects cover ~1 % of the cells),
    plus a light image term: the image's strongest cell should say whether it holds a defect.

    logits, coverage (mask share per cell), valid (cells that count) [B, h, w]."""
    target = (coverage >= POSITIVE).float()
    counted = valid & ((coverage == 0) | (coverage >= POSITIVE))
    pos, neg = (target * counted).sum().clamp(min=1), ((1 - target) * counted).sum().clamp(min=1)
    weight = counted * (target * neg / pos + (1 - target))
    cells = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum() / weight.sum()
    n = counted.flatten(1).sum(1).clamp(min=1)
    strongest = logits.masked_fill(~counted, -1e4).flatten(1).logsumexp(1) - n.log()
    image = F.binary_cross_entropy_with_logits(strongest, (target * counted).flatten(1).amax(1))
    return cells + 0.1 * image
