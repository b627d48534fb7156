"""Per-product memory banks of good patches and the nearest-neighbour scoring against them."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor, chunk_elems: int = 1 << 20) -> torch.Tensor:
    """Euclidean distance of each query [N, D] to its nearest bank row [M, D] -> [N].

    The [n, M] distance block is written into one reused buffer of about 4 MB: fresh blocks of
    tens of MB per image cost glibc an mmap and a page fault per 4 kB every time (3x slower)."""
    bank = bank.float()
    bank_sq = (bank * bank).sum(1)  # [M]
    n = max(1, min(len(queries), chunk_elems // max(1, len(bank))))
    out = torch.empty(len(queries), device=queries.device)
    block = torch.empty(n, len(bank), device=queries.device)
    for start in range(0, len(queries), n):
        q = queries[start : start + n].float()
        d = block[: len(q)]
        torch.addmm(bank_sq, q, bank.T, alpha=-2, out=d)  # |b|^2 - 2 q.b
        d += (q * q).sum(1, keepdim=True)
        torch.amin(d, 1, out=out[start : start + len(q)])
    return out.clamp_(min=0).sqrt_()


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
