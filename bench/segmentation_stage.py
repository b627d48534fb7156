"""Does fine-tuning the stride-16 stage under a product's segmentation head let fewer defects through?

The station's segmentation head (models/anomaly/segmentation.py) learns on frozen EfficientNet-Lite0
patch features. This trains the same head, on the same masked train defects and good train images,
twice per seed: once on the frozen features, once with the backbone's stride-16 stage (blocks 3 and
4, from the pretrained weights) learning beside it at a tenth of the head's rate, both on the cached
output of the frozen stride-8 stage at the 320 px square view. Each head's image score (its strongest
cell) is judged on val: AUROC, and the share of val defects at or below the largest score of the
calibration split's good images (held out of train, as the station holds them out; with fewer than
99 parts that largest score is the reject threshold) and below their 98th percentile. Test is never
read.

    python bench/segmentation_stage.py --data ../shared/data --product magnetic-tile --seeds 0 1 2

Val holds a dozen defective tiles. ``--folds K`` judges over every train and val part instead: the
product's train and val parts are dealt into K folds of whole parts (bench/folds.py, test left
out), and each fold is judged by heads trained on three of the others (the fold copy's train
split; its val fold is unused, the head chooses nothing), against the calibration parts held out of
those (each fold's own threshold); escapes and false rejects are pooled over the folds. The ``val_``
keys of a fold's line are that fold's.

    python bench/segmentation_stage.py --data ../shared/data --product magnetic-tile --seeds 0 --folds 5

Prints one JSON line per seed, fold and head, then one with the means (or the pooled folds).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from folds import build_folds
from PIL import Image
from sklearn.metrics import roc_auc_score

from inspector.dataset import CALIBRATION, Dataset, Sample, load_dataset
from inspector.images import load_image
from models.anomaly import SegmentationHead, mask_to_grid, segmentation_loss
from models.encoders.weights import cached_state_dict, efficientnet_lite_state_dict
from models.transforms import preprocess

SIZE, GRID, BATCH, MAX_GOOD = 320, 40, 16, 400  # the station's fit320 view, its stride-8 grid, its head's batch


def backbone() -> torch.nn.Module:
    arch = "tf_efficientnet_lite0"
    ref = timm.create_model(arch, pretrained=False).state_dict()
    sd = cached_state_dict(arch, lambda: efficientnet_lite_state_dict("lite0", ref))
    body = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3))
    body.load_state_dict({k: sd[k] for k in body.state_dict()}, strict=True)
    return body.eval()


@torch.inference_mode()
def stride8(body: torch.nn.Module, samples: list[Sample]) -> dict[Path, tuple[torch.Tensor, torch.Tensor]]:
    """Each image's frozen stride-8 map [40, 40, 40] and its mask's share per grid cell [40, 40]."""
    out = {}
    for i in range(0, len(samples), BATCH):
        batch = samples[i : i + BATCH]
        x = torch.stack([preprocess(load_image(s.path), (SIZE, SIZE), (0.5,) * 3, (0.5,) * 3) for s in batch])
        x = body.bn1(body.conv_stem(x))
        for block in body.blocks[:3]:
            x = block(x)
        for s, xi in zip(batch, x, strict=True):
            cover = torch.zeros(GRID, GRID)
            if s.is_defect and s.mask is not None:
                with Image.open(s.mask) as im:
                    cover = mask_to_grid(torch.from_numpy(np.asarray(im.convert("L")) > 127), (GRID, GRID))
            out[s.path.resolve()] = (xi.half(), cover.half())
    return out


def patch_features(x8: torch.Tensor, stage: torch.nn.Module) -> torch.Tensor:
    """The extractor's 152-d patches (models/anomaly/extractor.py) from the stride-8 map and ``stage``."""
    maps = [F.avg_pool2d(x8, 3, 1, 1), F.avg_pool2d(stage(x8), 3, 1, 1)]
    return torch.cat([maps[0], F.interpolate(maps[1], size=maps[0].shape[-2:], mode="bilinear")], 1)


def run(ds: Dataset, judged: str, cache: dict, body: torch.nn.Module, seed: int, tune: bool, steps: int) -> dict:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    stage = copy.deepcopy(torch.nn.Sequential(body.blocks[3], body.blocks[4])).eval()  # batch norms keep their stats
    stage.requires_grad_(tune)
    ds = Dataset(ds.manuals, [replace(s, path=s.path.resolve()) for s in ds.samples if s.path.resolve() in cache])
    train = ds.split("train")
    defect = [s for s in train if s.is_defect and s.mask is not None]
    good = rng.sample([s for s in train if not s.is_defect], min(MAX_GOOD, sum(not s.is_defect for s in train)))
    head = SegmentationHead(152)
    with torch.no_grad():
        f = torch.cat([patch_features(cache[s.path][0].float()[None], stage) for s in rng.sample(defect + good, 200)])
        head.mean.copy_(f.mean((0, 2, 3)).view(1, -1, 1, 1))
        head.std.copy_(f.std((0, 2, 3)).view(1, -1, 1, 1) + 1e-6)
    groups = [{"params": head.parameters(), "lr": 1e-3}]
    if tune:
        groups.append({"params": stage.parameters(), "lr": 1e-4, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
    head.train()
    start = time.perf_counter()
    for _ in range(steps):
        xs, covers = [], []
        for s in [rng.choice(defect) for _ in range(BATCH // 2)] + [rng.choice(good) for _ in range(BATCH // 2)]:
            x, cover = (t.float() for t in cache[s.path])
            dims = [d for d in (-1, -2) if rng.random() < 0.5]
            xs.append(x.flip(dims) if dims else x)
            covers.append(cover.flip(dims) if dims else cover)
        cover = torch.stack(covers)
        loss = segmentation_loss(head(patch_features(torch.stack(xs), stage)), cover, torch.ones_like(cover).bool())
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - start
    head.eval()

    @torch.no_grad()
    def score(samples: list[Sample]) -> np.ndarray:
        chunks = [samples[i : i + 32] for i in range(0, len(samples), 32)]
        x = [torch.stack([cache[s.path][0].float() for s in c]) for c in chunks]
        return torch.cat([head(patch_features(b, stage)).flatten(1).amax(1) for b in x]).numpy()

    calibration, val = ds.split(CALIBRATION), ds.split(judged)
    cal, scores = score(calibration), score(val)
    bad = np.array([s.is_defect for s in val])
    top, p98 = cal.max(), np.quantile(cal, 0.98)
    return {
        "seed": seed,
        "head": "stage fine-tuned" if tune else "frozen",
        "judged": judged,
        "train_seconds": round(seconds),
        "val_auroc": round(float(roc_auc_score(bad, scores)), 4),
        "val_escape_at_calibration_max": round(float((scores[bad] <= top).mean()), 3),
        "val_false_reject_at_calibration_max": round(float((scores[~bad] > top).mean()), 3),
        "val_defects": int(bad.sum()),
        "val_escaped_at_calibration_max": int((scores[bad] <= top).sum()),
        "val_escaped_at_calibration_p98": int((scores[bad] <= p98).sum()),
        "val_good_rejected_at_calibration_max": int((scores[~bad] > top).sum()),
        "val_escape_at_calibration_p98": round(float((scores[bad] <= p98).mean()), 3),
        "calibration_images": len(calibration),
        "val_images": len(val),
    }


def pooled_folds(rows: list[dict]) -> dict:
    """Per-fold rows of one seed and head -> escapes and false rejects counted over every fold."""
    n_bad, n_good = sum(r["val_defects"] for r in rows), sum(r["val_images"] - r["val_defects"] for r in rows)
    return {
        "defect_images": n_bad,
        "good_images": n_good,
        "escape_at_calibration_max": round(sum(r["val_escaped_at_calibration_max"] for r in rows) / n_bad, 3),
        "false_reject_at_calibration_max": round(
            sum(r["val_good_rejected_at_calibration_max"] for r in rows) / n_good, 4
        ),
        "escape_at_calibration_p98": round(sum(r["val_escaped_at_calibration_p98"] for r in rows) / n_bad, 3),
        "escape_at_calibration_max_folds": [r["val_escape_at_calibration_max"] for r in rows],
        "auroc_mean_over_folds": round(float(np.mean([r["val_auroc"] for r in rows])), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--product", default="magnetic-tile")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=600, help="the station's segmentation_steps")
    ap.add_argument("--folds", type=int, default=0, help="judge over K folds of the train and val parts, not val")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data, products=[args.product])
    doubtful = ds.doubtful_good()
    body = backbone()
    cache = stride8(body, [s for s in ds.samples if s.split != "test" and s.path not in doubtful])
    heads = ("frozen", "stage fine-tuned")
    if not args.folds:
        ds.hold_out_calibration(0.01)  # the station's default promise and share
        rows = [run(ds, "val", cache, body, seed, tune, args.steps) for seed in args.seeds for tune in (False, True)]
        for row in rows:
            print(json.dumps(row))
        keys = ("val_auroc", "val_escape_at_calibration_max", "val_escape_at_calibration_p98")
        mean = {h: {k: round(float(np.mean([r[k] for r in rows if r["head"] == h])), 3) for k in keys} for h in heads}
        print(json.dumps({"product": args.product, "seeds": args.seeds, "mean": mean}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        roots = build_folds(args.data / args.product, args.folds, Path(tmp), without_test=True)
        rows = []
        for j, root in enumerate(roots):
            fold = load_dataset(root, products=[args.product])
            fold.hold_out_calibration(0.01)
            for seed in args.seeds:
                for tune in (False, True):
                    rows.append(run(fold, "test", cache, body, seed, tune, args.steps) | {"fold": j})
                    print(json.dumps(rows[-1]), flush=True)
    summary = {
        seed: {h: pooled_folds([r for r in rows if r["seed"] == seed and r["head"] == h]) for h in heads}
        for seed in args.seeds
    }
    print(json.dumps({"product": args.product, "folds": args.folds, "pooled": summary}))


if __name__ == "__main__":
    main()
