"""Train a product's segmentation head on its train images' defect masks, or, for a product
without masks, on their labels alone (models/anomaly/segmentation.py).

Only the train split teaches it: the calibration parts stay unseen, so the thresholds on its
score (and the map's reference) come from parts it never trained on. Its score decides beside
the product's other scores (``anomaly.segmentation_decides``) unless val drops it beyond chance.
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from inspector.anomaly_fit import AnomalyBuild, decode
from inspector.dataset import Dataset, Sample
from inspector.errors import ImageError
from inspector.settings import AnomalySettings
from models.anomaly import SegmentationHead, label_loss, mask_to_grid, segmentation_loss
from models.anomaly.segmentation import POSITIVE
from models.card import SegmentationSpec

WINDOW = 32  # grid cells a training crop spans (256 px at stride 8): same-sized crops batch together
BATCH = 32
MAX_GOOD = 400  # good train images it learns from at most (bounded memory and time)
MAX_LABELLED = 600  # defect train images a head taught by labels learns from at most


def fit_segmentation(
    build: AnomalyBuild, ds: Dataset, cfg: AnomalySettings, device: torch.device, max_pixels: int,
    seed: int = 0, progress: bool = True,
) -> None:  # fmt: skip
    """A head for every product with at least ``cfg.segmentation_min_masks`` masked train
    defects, else, with at least ``cfg.label_head_min_defects`` defect train images, one taught by
    their labels."""
    doubtful = ds.doubtful_good()
    for product, spec in build.specs.items():
        train = [s for s in ds.split("train") if s.product == product]
        teaching = [s for s in train if s.is_defect and s.mask is not None]  # the defect images it learns from
        defects = [s for s in train if s.is_defect]
        if cfg.segmentation_min_masks and len(teaching) >= cfg.segmentation_min_masks:
            locates, need, steps = True, cfg.segmentation_min_masks, cfg.segmentation_steps
        elif cfg.label_head_min_defects and len(defects) >= cfg.label_head_min_defects:
            # the setting counts the product's defect images; it learns from at most MAX_LABELLED
            locates, need, steps = False, min(cfg.label_head_min_defects, MAX_LABELLED), cfg.label_head_steps
            teaching = random.Random(seed).sample(defects, min(len(defects), MAX_LABELLED))
        else:
            continue
        good = [s for s in train if not s.is_defect and s.path not in doubtful]
        good = random.Random(seed).sample(good, min(len(good), MAX_GOOD))
        start = time.perf_counter()
        part = build.part(None, device)
        grids, skipped = [], []
        desc = f"{'segmentation' if locates else 'label head'} {product}"
        for s in tqdm(teaching + good, desc=desc, disable=not progress, leave=False):
            if s.path not in build.seg_cells:
                try:
                    view = part.view(decode(s, max_pixels), product)
                    mask = _mask(s) if locates else None
                except (ImageError, OSError, SyntaxError) as exc:
                    skipped.append(f"{s.path.name} ({exc})")
                    continue
                with torch.inference_mode():
                    (_, feats), *_ = part.features([view], spec.view)
                f = feats[0].half().cpu()
                cover = mask_to_grid(mask, tuple(f.shape[-2:])) if mask is not None else torch.zeros(f.shape[-2:])
                build.seg_cells[s.path] = (f, cover, s.is_defect)
            grids.append(build.seg_cells[s.path])
        if skipped:
            names = ", ".join(skipped[:5])
            print(f"{product}: segmentation skipped {len(skipped)} unreadable images or masks: {names}")
        n_def = sum(d for _, _, d in grids)
        if n_def < need or n_def == len(grids):
            continue
        dim = part.extractors[spec.view.backbone].dim
        head = train_head(grids, dim, steps, seed) if locates else train_label_head(grids, dim, steps, seed)
        build.seg_heads[product] = head.to(device).eval()
        seconds = time.perf_counter() - start
        taught_by = "masks" if locates else "labels"
        build.specs[product] = spec.model_copy(
            update={
                "segmentation": SegmentationSpec(
                    masked=n_def, good=len(grids) - n_def, steps=steps, seconds=round(seconds, 1), taught_by=taught_by
                )
            }
        )
        what = "masked defects" if locates else "defect images (labels only)"
        print(f"{product}: {desc.split()[0]} head from {n_def} {what} and {len(grids) - n_def} good images, "
              f"{seconds:.0f} s")  # fmt: skip


def _mask(s: Sample) -> torch.Tensor | None:
    """The defect's mask as bool [H, W] (any size: it is compared on the grid), None for a good part."""
    if not s.is_defect:
        return None
    with Image.open(s.mask) as im:  # type: ignore[arg-type]
        return torch.from_numpy(np.asarray(im.convert("L")) > 127)


def _crop(f: torch.Tensor, cover: torch.Tensor, rng: random.Random) -> tuple[torch.Tensor, ...]:
    """A WINDOW x WINDOW crop of the grid (zero-padded where the grid is smaller), flipped at random."""
    D, h, w = f.shape
    y, x = rng.randint(0, max(0, h - WINDOW)), rng.randint(0, max(0, w - WINDOW))
    defective = (cover >= POSITIVE).nonzero()
    if len(defective) and rng.random() < 0.8:  # mostly around the defect: a crop beside it teaches little
        cy, cx = defective[rng.randrange(len(defective))].tolist()
        y = min(max(0, h - WINDOW), max(0, cy - rng.randrange(WINDOW)))
        x = min(max(0, w - WINDOW), max(0, cx - rng.randrange(WINDOW)))
    out_f = torch.zeros(D, WINDOW, WINDOW)
    out_c = torch.zeros(WINDOW, WINDOW)
    valid = torch.zeros(WINDOW, WINDOW, dtype=torch.bool)
    ch, cw = min(h, WINDOW), min(w, WINDOW)
    out_f[:, :ch, :cw] = f[:, y : y + ch, x : x + cw].float()
    out_c[:ch, :cw] = cover[y : y + ch, x : x + cw]
    valid[:ch, :cw] = True
    dims = [d for d, flip in ((-1, rng.random() < 0.5), (-2, rng.random() < 0.5)) if flip]
    if dims:
        out_f, out_c, valid = out_f.flip(dims), out_c.flip(dims), valid.flip(dims)
    return out_f, out_c, valid


def train_head(grids: list[tuple[torch.Tensor, torch.Tensor, bool]], dim: int, steps: int, seed: int = 0):
    """Half of each batch defect images, half good ones; AdamW with weight decay and feature
    dropout, a few hundred steps: a few hundred masked images overfit a longer run."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = SegmentationHead(dim)
    stacked = torch.cat([f.float().flatten(1) for f, _, _ in grids], 1)  # [D, all cells]
    head.mean.copy_(stacked.mean(1).view(1, -1, 1, 1))
    head.std.copy_(stacked.std(1).view(1, -1, 1, 1) + 1e-6)
    del stacked
    defect = [g for g in grids if g[2]]
    good = [g for g in grids if not g[2]]
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    head.train()
    for _ in range(steps):
        batch = [_crop(*rng.choice(defect)[:2], rng) for _ in range(BATCH // 2)]
        batch += [_crop(*rng.choice(good)[:2], rng) for _ in range(BATCH - len(batch))]
        f, cover, valid = (torch.stack(t) for t in zip(*batch, strict=True))
        loss = segmentation_loss(head(f), cover, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()


def train_label_head(grids: list[tuple[torch.Tensor, torch.Tensor, bool]], dim: int, steps: int, seed: int = 0):
    """The head taught by image labels: whole grids (a crop might miss the defect), half of each
    batch defect images, flipped at random; grids of one size go through together."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = SegmentationHead(dim, locates=False)
    # a sample bounds the memory; it is mostly defect grids, whose cells are mostly good surface
    stacked = torch.cat([f.float().flatten(1) for f, _, _ in grids[:MAX_GOOD]], 1)  # [D, cells]
    head.mean.copy_(stacked.mean(1).view(1, -1, 1, 1))
    head.std.copy_(stacked.std(1).view(1, -1, 1, 1) + 1e-6)
    del stacked
    defect = [g[0] for g in grids if g[2]]
    good = [g[0] for g in grids if not g[2]]
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.05)
    head.train()
    for _ in range(steps):
        batch = [(rng.choice(defect), 1.0) for _ in range(BATCH // 2)]
        batch += [(rng.choice(good), 0.0) for _ in range(BATCH - len(batch))]
        by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, float]]] = {}
        for f, y in batch:
            dims = [d for d in (-1, -2) if rng.random() < 0.5]
            by_shape.setdefault(tuple(f.shape), []).append((f.float().flip(dims) if dims else f.float(), y))
        loss = sum(
            label_loss(head, head(torch.stack([f for f, _ in group])), torch.tensor([y for _, y in group])) * len(group)
            for group in by_shape.values()
        ) / len(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()
