"""Per-product memory banks of good patches and the nearest-neighbour scoring against them."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from models.inference import available_cores, bf16_is_fast


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


class NearestSearch:
    """One bank made ready for repeated queries: ``search(queries [N, D])`` -> each one's distance to
    its nearest bank row [N].

    ``low_precision``: the nearest row is chosen in bfloat16 and its distance taken in float32. The
    bf16 product comes back rounded to 8 bits, so where two rows lie within about 0.4 % of each
    other's distance it may pick the farther: then the distance is up to 0.4 % long, never short
    (on the demo's mono cells, 89 patches of 8,000 against a float64 search; the rest exact). Rows
    are centred on the bank's mean first so that the rounding is relative to the spread of good
    patches, not to their offset from zero. Calibration and inspection search alike on one machine; a machine without
    bf16 units searches exactly, so its scores are at most as high as those the thresholds were set on.
    """

    def __init__(
        self, bank: torch.Tensor, low_precision: bool, chunk_elems: int = 1 << 22, workers: int | None = None
    ) -> None:
        """``workers``: threads the queries are split over; None: the cores one torch thread each
        fills (``idle_cores``)."""
        self.bank, self.low_precision, self.chunk_elems, self.workers = bank, low_precision, chunk_elems, workers
        if low_precision:
            self.mean = bank.mean(0)
            self.centred = bank - self.mean
            hi, lo = _split((self.centred * self.centred).sum(1))
            ones = torch.ones(len(bank), 2, dtype=torch.bfloat16, device=bank.device)
            # [q, 1, 1, |q|^2 hi, lo] . [-2b, |b|^2 hi, lo, 1, 1] = |q - b|^2, each norm split in two bf16
            # numbers so that it is exact to 16 bits before the sum is rounded
            cols = [(-2 * self.centred).bfloat16(), hi[:, None], lo[:, None], ones]
            self.keys = torch.cat(cols, 1).T.contiguous()  # [D + 4, M]

    def __call__(self, queries: torch.Tensor) -> torch.Tensor:
        q = queries.float() - self.mean if self.low_precision else queries
        out = torch.empty(len(q), device=q.device)
        workers = self.workers if self.workers is not None else idle_cores(q.device)

        def search(start: int, stop: int) -> None:
            if self.low_precision:
                self._bf16(q[start:stop], out[start:stop])
            else:
                out[start:stop] = nearest_distance(q[start:stop], self.bank)

        in_parts(len(q), workers, search)
        return out if not self.low_precision else out.sqrt_()

    def _bf16(self, q: torch.Tensor, out: torch.Tensor) -> None:
        """Squared distances of ``q`` [n, D] (centred) to their nearest rows, into ``out`` [n]."""
        n = max(32, self.chunk_elems // max(1, len(self.bank)) // 32 * 32)  # whole AMX tiles of rows
        for start in range(0, len(q), n):
            x = q[start : start + n]
            hi, lo = _split((x * x).sum(1))
            ones = torch.ones(len(x), 2, dtype=torch.bfloat16, device=x.device)
            d2 = torch.cat([x.bfloat16(), ones, hi[:, None], lo[:, None]], 1) @ self.keys  # [n, M] bf16
            # non-negative bf16 numbers order as their bits do, and an int16 minimum is 2.5x faster; the
            # few just below zero (a query all but on a row) still come before every positive one
            nearest = d2.view(torch.int16).min(1).indices
            out[start : start + len(x)] = (x - self.centred[nearest]).square_().sum(1)


def idle_cores(device: torch.device) -> int:
    """How many threads of torch's size fit this process's cores: 2 on a 2-core station whose
    model runs one thread per part (a PLC's handshake), 1 where torch already uses every core."""
    if device.type != "cpu":
        return 1
    return max(1, available_cores() // torch.get_num_threads())


_POOL = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="bank-search")  # threads start on use


def in_parts(n: int, workers: int, fn: Callable[[int, int], None]) -> None:
    """``fn(start, stop)`` over ``workers`` contiguous ranges of n rows, one on the caller's thread
    and each other on a pool thread (torch's kernels release the GIL). A station that runs its
    parts side by side on one core each thus lets the bank search, the anomaly part's longest
    step, take the classifier's core once the classifier is done. Every row is searched alike
    whatever the split, so the distances are the same numbers."""
    step = -(-n // max(1, workers))
    if workers < 2 or n < 64:
        fn(0, n)
        return
    inference = torch.is_inference_mode_enabled()  # thread-local: the pool's threads start outside it

    def run(start: int) -> None:
        with torch.inference_mode(inference):
            fn(start, min(n, start + step))

    rest = [_POOL.submit(run, start) for start in range(step, n, step)]
    fn(0, step)
    for future in rest:
        future.result()


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 -> two bfloat16 whose sum holds 16 of its bits."""
    hi = x.bfloat16()
    return hi, (x - hi.float()).bfloat16()


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

    def __init__(
        self, dim: int, blur_sigma: float = 0.5, device: torch.device | str = "cpu", low_precision: bool | None = None
    ) -> None:
        """``low_precision``: search in bfloat16 (``NearestSearch``); None: where it is fast here."""
        self.dim, self.blur_sigma, self.device = dim, blur_sigma, torch.device(device)
        self.low_precision = bf16_is_fast(self.device) if low_precision is None else low_precision
        self._banks: dict[str, torch.Tensor] = {}
        self._search: dict[str, NearestSearch] = {}

    def add(self, product: str, bank: torch.Tensor) -> None:
        if bank.ndim != 2 or bank.shape[1] != self.dim:
            raise ValueError(f"bank for {product} must be [M, {self.dim}], got {tuple(bank.shape)}")
        self._banks[product] = bank.detach().float().contiguous().to(self.device)
        self._search[product] = NearestSearch(self._banks[product], self.low_precision)

    def products(self) -> list[str]:
        return sorted(self._banks)

    def bank(self, product: str) -> torch.Tensor:
        return self._banks[product]

    def __contains__(self, product: str) -> bool:
        return product in self._banks

    def __call__(self, features: torch.Tensor, product: str) -> torch.Tensor:
        B, D, h, w = features.shape
        q = features.permute(0, 2, 3, 1).reshape(-1, D)  # [B*h*w, D]
        dist = self._search[product](q).view(B, h, w)
        return gaussian_blur(dist, self.blur_sigma)
