"""Overlay the model's attention grid on the image it looked at (numpy and Pillow only)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def overlay(image_bytes: bytes, attention: bytes | None, alpha: float = 0.45) -> Image.Image:
    img = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    if not attention:
        return img
    grid = np.frombuffer(attention, "<f2").astype(np.float32)
    side = round(len(grid) ** 0.5)
    if side * side != len(grid):
        return img
    grid = grid.reshape(side, side)
    grid = (grid - grid.min()) / (np.ptp(grid) or 1.0)
    heat = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize(img.size, Image.BILINEAR), np.float32) / 255
    base = np.asarray(img, np.float32)
    red = np.zeros_like(base)
    red[..., 0] = 255
    a = (alpha * heat)[..., None]
    return Image.fromarray((base * (1 - a) + red * a).astype(np.uint8))
