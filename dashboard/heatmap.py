"""Overlay where the model saw a problem on the image (numpy and Pillow only).

The anomaly map, when the inspection has one, is an 8-bit PNG in which 128 marks a region as
strong as good parts reach only at the promised false-reject rate (1 % by default): it is drawn
transparent below half of that and fully red from that line up, so an operator sees the
defect, not the texture. Older inspections
(classifier only) show its attention grid instead, scaled to its own range.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _red(img: Image.Image, heat: np.ndarray, alpha: float) -> Image.Image:
    """Blend red into ``img`` by ``heat`` [h, w] in [0, 1] (any grid size)."""
    heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize(img.size, Image.BILINEAR), np.float32) / 255
    base = np.asarray(img, np.float32)
    red = np.zeros_like(base)
    red[..., 0] = 255
    a = (alpha * heat)[..., None]
    return Image.fromarray((base * (1 - a) + red * a).astype(np.uint8))


def anomaly_heat(png: bytes) -> np.ndarray:
    """The stored map -> [h, w] in [0, 1]: 0 below half the reject line, 1 at the line and above."""
    rel = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32) / 128  # 1.0 = rejects alone
    return np.clip((rel - 0.5) / 0.5, 0, 1)


def overlay(image_bytes: bytes, attention: bytes | None, alpha: float = 0.55, anomaly_map: bytes | None = None):
    img = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    if anomaly_map:
        return _red(img, anomaly_heat(anomaly_map), alpha)
    if not attention:
        return img
    grid = np.frombuffer(attention, "<f2").astype(np.float32)
    side = round(len(grid) ** 0.5)
    if side * side != len(grid):
        return img
    grid = grid.reshape(side, side)
    return _red(img, (grid - grid.min()) / (np.ptp(grid) or 1.0), alpha * 0.8)
