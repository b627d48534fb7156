"""Typed contracts shared by training, evaluation and the inference engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch


@dataclass(frozen=True)
class FusionConfig:
    """Shape of the fused classifier; saved in the model card and rebuilt from it."""

    fusion: str = "cross_attention"
    image_dim: int = 1280
    text_dim: int = 384
    hidden_dim: int = 256
    heads: int = 4
    rank: int = 8  # low_rank fusion only
    dropout: float = 0.1
    text_dropout: float = 0.3  # modality dropout on the product-context path (see heads.DefectHead)
    image_only: bool = False  # ablation: learned class embeddings instead of the manual's text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ClassifierOutput(NamedTuple):
    """What the classifier returns for a batch.

    class_logits: [B, C] scores of each image against its product's classes (padding = -inf).
    defect_logit: [B] logit of "this part is defective", usable without any manual.
    attention: [B, C, N] where each class description looked in the image (cross_attention only).
    """

    class_logits: torch.Tensor
    defect_logit: torch.Tensor
    attention: torch.Tensor | None = None


@dataclass
class ProductTexts:
    """A product's manual reduced to what the model needs: one text per class, ``ok`` first."""

    product: str
    classes: list[str]
    texts: list[str]
    overview: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PartOutput:
    """What one model part says about one image; the engine composes these into a verdict.

    scores: the part's raw defect scores by name (higher = more likely defective), before the
        product's decision puts the ones it uses on the common scale: a part may give several
        kinds of evidence (the classifier: "classifier", its class softmax read with the manual,
        and "defect_head", its manual-free defect head; the anomaly part: "anomaly").
    class_probs: [C] probabilities over the product's classes, ``ok`` first.
    type_probs: [C - 1] probabilities over the product's defect types, given that it is defective.
    anomaly_map: [h, w] per-region evidence on the part's grid: the bank's distances, or, for a
        product with a segmentation head, its P(defect) per region.
    pooled: [D] the image's pooled embedding (drift statistics).
    attention: [h, w] where a cross-attention classifier looked.
    """

    scores: dict[str, float]
    class_probs: np.ndarray | None = None
    type_probs: np.ndarray | None = None
    anomaly_map: np.ndarray | None = None
    pooled: np.ndarray | None = None
    attention: np.ndarray | None = None
