"""The interface every model part implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from inspector.manual import Manual
from models.types import PartOutput


class Part(Protocol):
    name: str  # how decisions in the model card refer to it ("classifier", "anomaly")

    def view(self, image: np.ndarray, product: str) -> torch.Tensor:
        """uint8 [H, W, 3] -> the part's input, uint8 [3, h, w]. Thread-safe (decode threads call it)."""
        ...

    def run(self, views: list[torch.Tensor], product: str, manual: Manual | None) -> list[PartOutput]:
        """One output per view; ``manual`` is None when the product has no usable manual."""
        ...

    def knows(self, product: str) -> bool:
        """Whether the part was built for ``product`` (a classifier reads any manual; a bank is per product)."""
        ...


@runtime_checkable
class TypesOverTurns(Part, Protocol):
    """A part that can name a defect's type again on the part turned and mirrored (the
    classifier: its guess wavers with the view, and a decision may type from the mean)."""

    def turned_types(
        self, views: list[torch.Tensor], product: str, manual: Manual | None, own: list[np.ndarray | None], n: int
    ) -> list[np.ndarray | None]:
        """Per view, [n, T]: ``own`` and the type probabilities on its next n - 1 turns and mirrors."""
        ...
