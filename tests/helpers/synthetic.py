"""A small generated product (folder layout) whose defects look like their manual says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

MANUAL = """---
product: {product}
name: Brushed steel washer
version: 1
---

# Brushed steel washer

## Product
A flat brushed steel plate photographed from above.

## Good part
An even gray surface with fine horizontal brushing texture.

## Defects

### scratch
- Looks like: a long thin dark line running diagonally across the surface.
- Cause: handling.
- Severity: major.
- Rule: reject any scratch.

### spot
- Looks like: a round dark blob, a stain in one place.
- Cause: contamination.
- Severity: minor.
- Rule: reject spots wider than 2 mm.
"""


def make_image(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    base = 150 + rng.normal(0, 4, (size, size)) + np.linspace(-10, 10, size)[None, :]
    streaks = np.sin(np.arange(size) * 1.3) * 3  # brushing
    # ok_vertical: a good part from a new supplier, brushed the other way (the training data never showed it)
    base += streaks[None, :] if kind == "ok_vertical" else streaks[:, None]
    yy, xx = np.mgrid[:size, :size]
    if kind == "scratch":
        a, b = rng.uniform(0.6, 1.4), rng.uniform(-20, 20)
        base[np.abs(yy - (a * xx + b)) < 1.5] -= 90
    elif kind == "spot":
        cy, cx, r = rng.uniform(25, size - 25), rng.uniform(25, size - 25), rng.uniform(7, 13)
        base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] -= 90
    return np.clip(base, 0, 255).astype(np.uint8)


def make_product(root: Path, product: str = "washer", per_class: int = 40, seed: int = 0) -> Path:
    """Write ``root/<product>/images/<class>/*.png`` + manual.md and return the product folder."""
    rng = np.random.default_rng(seed)
    folder = root / product
    for kind in ("ok", "scratch", "spot"):
        d = folder / "images" / kind
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_image(kind, rng)).save(d / f"{kind}_{i:03d}.png")
    (folder / "manual.md").write_text(MANUAL.format(product=product))
    return folder
