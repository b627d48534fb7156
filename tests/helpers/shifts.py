"""Real images, simulated line changes, and their drift signals (for drift tests and bench/drift.py)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from inspector.images import load_image
from models import ImageEncoder
from models.drift import image_statistics
from models.transforms import normalize, resize, to_float


def darker(image: np.ndarray, factor: float = 0.7) -> np.ndarray:
    """Lighting lost 30 %: a lamp ageing or a dirty diffuser."""
    return np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def blurred(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Focus lost: a lens knocked or fogged."""
    return cv2.GaussianBlur(image, (0, 0), sigma)


SHIFTS = {"none": lambda im: im, "brightness_-30%": darker, "gaussian_blur": blurred}


@torch.inference_mode()
def signals(encoder: ImageEncoder, images: list[np.ndarray], batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """-> pooled features [N, D] and image statistics [N, 4] (with pixels), as the engine computes them."""
    pooled, stats = [], []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch]
        x = to_float(torch.stack([resize(im, encoder.input_size) for im in chunk]))
        pixels = np.array([im.shape[0] * im.shape[1] for im in chunk], np.float64)
        stats.append(np.c_[image_statistics(x).numpy(), pixels])
        pooled.append(encoder(normalize(x, encoder.mean, encoder.std))[1].float().numpy())
    return np.concatenate(pooled), np.concatenate(stats)


def load_all(paths) -> list[np.ndarray]:
    return [load_image(p) for p in paths]
