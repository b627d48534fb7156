"""The drift reference of a model: what its good parts looked like when it was trained.

Saved beside the checkpoint (``drift_reference.npz``): a PCA projection of the image encoder's
pooled features, the projected features and image statistics of up to ``per_product`` good
parts per product from the train and val splits. Production inspections are projected the
same way by the engine, so drift compares like with like.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspector.dataset import Sample
from inspector.errors import ImageError
from inspector.features import FeatureCache
from inspector.images import DRAFT_SIZE, load_image
from models.drift import Projection, fit_projection, image_statistics
from models.transforms import resize, to_float

REFERENCE_FILE = "drift_reference.npz"


@dataclass
class Reference:
    projection: Projection
    products: np.ndarray  # [N] product id of each row
    embeddings: np.ndarray  # [N, k] projected pooled features
    stats: np.ndarray  # [N, 4] brightness, contrast, sharpness, pixels (older files: the first three)

    def of(self, product: str) -> tuple[np.ndarray, np.ndarray]:
        rows = self.products == product
        return self.embeddings[rows], self.stats[rows]


def stats_of(image: np.ndarray, size: int) -> np.ndarray:
    return image_statistics(to_float(resize(image, size)).unsqueeze(0))[0].numpy()


def build_reference(
    cache: FeatureCache, samples: list[Sample], per_product: int = 300, dim: int = 32, seed: int = 0
) -> Reference | None:
    """None when no good part could be read (nothing to compare production against)."""
    rng = random.Random(seed)
    chosen: list[Sample] = []
    for product in sorted({s.product for s in samples}):
        good = [s for s in samples if s.product == product and not s.is_defect]
        chosen += rng.sample(good, min(per_product, len(good)))
    feats, _ = cache.extract(chosen, 0, progress=False)
    kept = [chosen[i] for i in feats.kept]
    stats, rows = [], []
    for i, s in enumerate(kept):
        try:
            image = load_image(s.path, max_pixels=cache.max_pixels, draft_size=DRAFT_SIZE)
            stats.append([*stats_of(image, cache.encoder.input_size), image.shape[0] * image.shape[1]])
            rows.append(i)
        except ImageError:
            continue
    if not rows:
        return None
    pooled = feats.pooled[rows].float().numpy()
    projection = fit_projection(pooled, dim)
    return Reference(
        projection,
        np.array([kept[i].product for i in rows]),
        projection(pooled),
        np.array(stats, np.float64),
    )


def save_reference(model_dir: Path, ref: Reference) -> None:
    np.savez_compressed(
        Path(model_dir) / REFERENCE_FILE,
        mean=ref.projection.mean,
        components=ref.projection.components,
        products=ref.products.astype(str),
        embeddings=ref.embeddings,
        stats=ref.stats,
    )


def load_reference(model_dir: Path) -> Reference | None:
    """None for a model saved before drift references existed (drift then skips embeddings)."""
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        return Reference(Projection(z["mean"], z["components"]), z["products"], z["embeddings"], z["stats"])
