"""Defect segmentation learnt from masks, on the anomaly branch's patch features.

A memory bank only knows good parts: it flags what is unlike them, and on magnetic tiles that
includes the odd good tile's grain while a faint crack stays close to good texture (pixel
AUROC 0.82 on val). Where a product ships defect masks, a small convolutional head on the
same frozen features learns what its defects look like cell by cell (pixel AUROC 0.98 on the
same val tiles). It adds to the bank, never replaces it: a defect type without masks still
shows as an anomaly.

A product without masks but with defect images (solar cells, pcb crops) gets the same head
taught by image labels alone (multiple-instance: a part is defective if some cells are). It
never learnt where a defect is, so it only scores the part, through a soft maximum over its
cells; the map stays the bank's. Explored on the demo's val cells (seed 0, alone): AUROC
0.935 mono / 0.891 poly, where the classifier's P(defect) scored 0.923 / 0.791 and the bank
0.894 / 0.830.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POSITIVE = 0.25  # a grid cell at least this much covered by the mask is defective; barely touched cells are left out


class SegmentationHead(nn.Module):
    """patch features [B, D, h, w] -> defect logits [B, h, w].

    Dilated 3x3 convolutions see about 13 x 13 cells (100 px at stride 8): enough context to
    tell a crack from the grain around it, little enough to stay on the part's own surface.
    """

    def __init__(self, dim: int, hidden: int = 64, dropout: float = 0.2, locates: bool = True) -> None:
        super().__init__()
        # locates: taught by masks, so its cells say where a defect is; else taught by image labels
        self.dim, self.locates = dim, locates
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

    def image_score(self, logits: torch.Tensor) -> torch.Tensor:
        """logits [B, h, w] -> the part's score [B]: the strongest cell where masks taught each
        cell, else the soft maximum the head was taught with (``soft_max_cell``)."""
        return logits.flatten(1).amax(1) if self.locates else soft_max_cell(logits)


def soft_max_cell(logits: torch.Tensor) -> torch.Tensor:
    """[B, h, w] -> [B]: log-mean-exp over the cells, between their mean and their maximum, so
    the image-label gradient reaches every cell that looks defective, not only the top one."""
    flat = logits.flatten(1)
    return flat.logsumexp(1) - math.log(flat.shape[1])


def label_loss(head: SegmentationHead, logits: torch.Tensor, defective: torch.Tensor) -> torch.Tensor:
    """BCE of the part's score against its label: logits [B, h, w], defective [B] (0/1)."""
    return F.binary_cross_entropy_with_logits(head.image_score(logits), defective.float())


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
