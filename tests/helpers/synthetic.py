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
    return make_image_and_mask(kind, rng, size)[0]


def make_image_and_mask(kind: str, rng: np.random.Generator, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image [size, size], bool mask of its defect)."""
    base = 150 + rng.normal(0, 4, (size, size)) + np.linspace(-10, 10, size)[None, :]
    streaks = np.sin(np.arange(size) * 1.3) * 3  # brushing
    # ok_vertical: a good part from a new supplier, brushed the other way (the training data never showed it)
    base += streaks[None, :] if kind == "ok_vertical" else streaks[:, None]
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), bool)
    if kind == "scratch":
        a, b = rng.uniform(0.6, 1.4), rng.uniform(-20, 20)
        mask = np.abs(yy - (a * xx + b)) < 1.5
    elif kind == "spot":
        cy, cx, r = rng.uniform(25, size - 25), rng.uniform(25, size - 25), rng.uniform(7, 13)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    base[mask] -= 90
    return np.clip(base, 0, 255).astype(np.uint8), mask


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


def make_masked_product(root: Path, product: str = "washer", per_class: int = 40, seed: int = 0) -> Path:
    """``make_product`` with a defect mask per defect image and a manifest: 60 % train, 20 % val,
    20 % test per class."""
    rng = np.random.default_rng(seed)
    folder = root / product
    lines = ["image,product,label,defect_type,split,mask,source,group"]
    for kind in ("ok", "scratch", "spot"):
        for d in ("images", "masks"):
            (folder / d / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image, mask = make_image_and_mask(kind, rng)
            name = f"{kind}_{i:03d}.png"
            Image.fromarray(image).save(folder / "images" / kind / name)
            split = "train" if i < 0.6 * per_class else "val" if i < 0.8 * per_class else "test"
            masked = ""
            if kind != "ok":
                Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "masks" / kind / name)
                masked = f"masks/{kind}/{name}"
            label = "ok" if kind == "ok" else "defect"
            lines.append(f"images/{kind}/{name},{product},{label},{kind},{split},{masked},,")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    (folder / "manual.md").write_text(MANUAL.format(product=product))
    return folder
