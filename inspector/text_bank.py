"""Class-description embeddings per product, cached per (manual hash, text encoder).

``text_source="ids"`` swaps every description for a fixed random vector per class: the
model then learns class embeddings from images alone. That is the manual-ablated baseline,
with the rest of the architecture unchanged.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

import torch

from inspector.manual import Manual
from models import TextEncoder, create_text_encoder


def id_vectors(product: str, classes: list[str], dim: int) -> torch.Tensor:
    """One fixed unit vector per (product, class), independent of any text."""
    out = []
    for c in classes:
        seed = int(hashlib.sha1(f"{product}/{c}".encode()).hexdigest()[:12], 16)
        out.append(
            torch.nn.functional.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(seed)), dim=0)
        )
    return torch.stack(out)


class TextBank:
    """Embeds manuals lazily and keeps them: the engine never re-encodes an unchanged manual.

    The text encoder itself is made on first need: a station whose manuals are all in the
    cache never loads it (a faster start, and about 90 MB less memory).
    """

    def __init__(
        self,
        name: str | None,
        make_encoder: Callable[[], TextEncoder] | None,
        dim: int,  # the width of the id vectors; a manual's embeddings have their encoder's
        cache_dir: Path | None,
        source: str = "manual",
    ) -> None:
        if source == "manual" and make_encoder is None:
            raise ValueError("text_source 'manual' needs a text encoder")
        self.make_encoder, self.dim, self.source = make_encoder, dim, source
        self._encoder: TextEncoder | None = None
        self.dir = Path(cache_dir) / "text" / (name if source == "manual" else "ids") if cache_dir else None
        self._memo: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()  # the engine's parts may ask for a manual side by side

    @classmethod
    def on_first_need(cls, name: str, source: str, cache_dir: Path | None, dim: int = 384) -> TextBank:
        """A bank that makes its text encoder only for a manual not in the cache: a station or a
        training whose manuals are all embedded never loads the 90 MB model."""
        make = (lambda: create_text_encoder(name)) if source == "manual" else None
        return cls(name, make, dim, cache_dir, source)

    def embed(self, manual: Manual) -> torch.Tensor:
        """-> [C, dim] for ``manual.classes`` (``ok`` first)."""
        if self.source == "ids":
            return id_vectors(manual.product, manual.classes, self.dim)
        key = manual.sha256
        if key in self._memo:
            return self._memo[key]
        with self._lock:
            if key not in self._memo:
                self._memo[key] = self._load_or_encode(manual)
            return self._memo[key]

    def _load_or_encode(self, manual: Manual) -> torch.Tensor:
        key = manual.sha256
        path = self.dir / f"{key}.pt" if self.dir else None
        if path is not None and path.exists():
            emb = torch.load(path, weights_only=True)
        else:
            if self._encoder is None:
                self._encoder = self.make_encoder()
            emb = self._encoder(manual.class_texts()).float()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(emb, path)
        return emb

    def padded(self, manuals: list[Manual]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> bank [P, Cmax, dim], mask [P, Cmax] for products in ``manuals`` order."""
        embs = [self.embed(m) for m in manuals]
        width = max(e.shape[0] for e in embs)
        bank = torch.zeros(len(embs), width, embs[0].shape[1])  # the encoder's width, known once it has embedded
        mask = torch.zeros(len(embs), width, dtype=torch.bool)
        for p, e in enumerate(embs):
            bank[p, : e.shape[0]], mask[p, : e.shape[0]] = e, True
        return bank, mask
