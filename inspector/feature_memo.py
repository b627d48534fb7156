"""Patch features kept in memory while one command passes over the same images several times:
a training builds banks, scores the splits and, in the demo, retrains on them; a retraining
scores its champion and challenger on images it has just extracted. Never the station: it sees
each image once."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from inspector.parts.anomaly import AnomalyPart
from models.anomaly import PatchExtractor
from models.inference import Precision


class FeatureMemo:
    """Patch features by input (float16, in memory) up to ``limit_mb``; past it, new inputs are
    computed and not kept: evicting instead would, on the next pass over the same images in the
    same order, drop each entry just before its reuse. ``limit_mb=None``: no limit (benchmarks)."""

    def __init__(self, limit_mb: float | None = None) -> None:
        self.limit = None if limit_mb is None else int(limit_mb * 2**20)
        self.bytes, self.hits, self.misses = 0, 0, 0
        self._kept: dict[tuple, torch.Tensor] = {}

    def get(self, key: tuple) -> torch.Tensor | None:
        found = self._kept.get(key)
        self.hits += found is not None
        self.misses += found is None
        return found

    def put(self, key: tuple, value: torch.Tensor) -> None:
        size = value.numel() * value.element_size()
        if key not in self._kept and (self.limit is None or self.bytes + size <= self.limit):
            self._kept[key], self.bytes = value, self.bytes + size

    def keys(self) -> list[tuple]:
        return list(self._kept)

    def forget(self, keys: list[tuple]) -> None:
        for k in keys:
            if (v := self._kept.pop(k, None)) is not None:
                self.bytes -= v.numel() * v.element_size()


_ACTIVE: FeatureMemo | None = None


@contextmanager
def remember_patch_features(limit_mb: float) -> Iterator[FeatureMemo | None]:
    """Patch features extracted inside the block are kept for reuse inside it (an enclosing block's
    memo is reused): a command that builds banks, scores the splits and, in the demo, retrains on
    the same images extracts each image once per view. Never the station: it sees each image once."""
    global _ACTIVE
    if _ACTIVE is not None or limit_mb <= 0:
        yield _ACTIVE
        return
    _ACTIVE = FeatureMemo(limit_mb)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


def reuse_patch_features(part: object) -> None:
    """Let a loaded model's anomaly part answer from the enclosing memo, if any: a retraining
    scores its champion and challenger on images its training has just extracted."""
    if _ACTIVE is not None and isinstance(part, AnomalyPart):
        part.extractors = {
            k: e if isinstance(e, MemoExtractor) else MemoExtractor(e, _ACTIVE) for k, e in part.extractors.items()
        }


class MemoExtractor(torch.nn.Module):
    """A patch extractor that answers inputs it has seen from the memo. The extractor rounds its
    features to float16 itself, so kept features are the numbers a fresh extraction gives."""

    def __init__(self, inner: PatchExtractor, memo: FeatureMemo) -> None:
        super().__init__()
        self.inner, self.memo = inner, memo
        self.name, self.dim, self.stride, self.multiple = inner.name, inner.dim, inner.stride, inner.multiple
        self.mean, self.std = inner.mean, inner.std

    def forward(self, x: torch.Tensor, precision: Precision = "float32") -> torch.Tensor:
        keys = [(self.name, precision, tuple(v.shape), digest(v)) for v in x]
        found = [self.memo.get(k) for k in keys]
        todo = [i for i, f in enumerate(found) if f is None]
        if todo:
            for i, f in zip(todo, self.inner(x[todo], precision), strict=True):
                found[i] = f.half().cpu()
                self.memo.put(keys[i], found[i])
        return torch.stack(found).to(x.device).float()  # type: ignore[arg-type]


def active_memo() -> FeatureMemo | None:
    """The memo of the enclosing ``remember_patch_features`` block, if any."""
    return _ACTIVE


def digest(t: torch.Tensor) -> bytes:
    return hashlib.blake2b(t.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).digest()
