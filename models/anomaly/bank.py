"""Per-product memory banks of good patches and the nearest-neighbour scoring against them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance of each query [N, D] to its nearest bank row [M, D] -> [N]."""
    bank = bank.float()
    bank_sq = (bank * bank).sum(1)  # [M]
    out = []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk].float()
        d = (q * q).sum(1, keepdim=True) - 2 * (q @ bank.T) + bank_sq  # [n, M] squared
        out.append(d.min(1).values.clamp_(min=0).sqrt_())
    return torch.cat(out) if out else queries.new_zeros(0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """[B, h, w] -> same, separable Gaussian with replicated borders (no dark frame at the edges)."""
    if sigma <= 0:
        return x
    radius = max(1, round(3 * sigma))
    k = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(k**2) / (2 * sigma**2))
    k = k / k.sum()
    y = F.pad(x.unsqueeze(1), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1)).squeeze(1)


class MemoryBanks:
    """One bank of good patch features [M, D] per product, all from the same patch extractor.

    ``banks(features [B, D, h, w], product)`` -> anomaly map [B, h, w]: each cell's distance to
    the nearest good patch of that product, lightly blurred (a defect is a region; one noisy
    cell should not decide a part).
    """

    def __init__(self, dim: int, blur_sigma: float = 0.5, device: torch.device | str = "cpu") -> None:
        self.dim, self.blur_sigma, self.device = dim, blur_sigma, torch.device(device)
        self._banks: dict[str, torch.Tensor] = {}

    def add(self, product: str, bank: torch.Tensor) -> None:
        if bank.ndim != 2 or bank.shape[1] != self.dim:
            raise ValueError(f"bank for {product} must be [M, {self.dim}], got {tuple(bank.shape)}")
        self._banks[product] = bank.detach().float().contiguous().to(self.device)

    def products(self) -> list[str]:
        return sorted(self._banks)

    def bank(self, product: str) -> torch.Tensor:
        return self._banks[product]

    def __contains__(self, product: str) -> bool:
        return product in self._banks

    def __call__(self, features: torch.Tensor, product: str) -> torch.Tensor:
        B, D, h, w = features.shape
        q = features.permute(0, 2, 3, 1).reshape(-1, D)  # [B*h*w, D]
        dist = nearest_distance(q, self._banks[product]).view(B, h, w)
        return gaussian_blur(dist, self.blur_sigma)
