"""Out-of-fold evidence for choosing each product's deciding parts.

Val alone holds few defects of few physical parts (magnetic-tile: 58 images of 2-3 tiles per
defect type), and a choice among up to fifteen score sets on so few overfits: the set that
wins on val is often not the one that wins on new parts. The train defects can vote too, as
long as each is scored by parts that never learnt from it: the train split is cut into folds by
physical part (a tile's lightings stay together), the learnt parts are refitted on the other
folds, and the held-out fold's defects are scored. The memory bank needs no refit: it holds
good patches only, so a train defect is as new to it as a val defect.

Only train images are read: the calibration split stays untouched until the thresholds.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from inspector.anomaly_fit import AnomalyBuild
from inspector.dataset import Dataset, Sample
from inspector.manual import Manual
from inspector.outputs import SplitOutputs, collect, concat
from inspector.parts import Part
from inspector.segmentation_fit import fit_segmentation
from inspector.settings import Settings
from inspector.text_bank import TextBank

MAX_SCORED = 600  # train defects scored per product at most: a few hundred settle the choice
FitClassifier = Callable[[list[Sample]], Part]  # train samples -> a classifier part learnt on them


def part_folds(samples: list[Sample], k: int, seed: int) -> dict[Path, int]:
    """Each image's fold: whole units (``Sample.unit``: a physical part, or every crop of one
    board) dealt out per product and defect type in turn, so every fold holds every type a
    product has (a unit's type is its commonest one). A held-out crop whose board neighbours
    taught the refitted parts would score as if seen before."""
    groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.product, s.unit)].append(s)
    by_type: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for key, members in groups.items():
        kind = Counter(s.defect_type for s in members if s.is_defect).most_common(1)
        by_type[(key[0], kind[0][0] if kind else "ok")].append(key)
    rng = random.Random(seed)
    fold_of: dict[Path, int] = {}
    for stratum in sorted(by_type):
        keys = sorted(by_type[stratum])
        rng.shuffle(keys)
        offset = rng.randrange(k)  # small strata do not all start in fold 0
        for i, key in enumerate(keys):
            for s in groups[key]:
                fold_of[s.path] = (i + offset) % k
    return fold_of


def chooses_out_of_fold(settings: Settings) -> bool:
    """Fine-tuning k more backbones costs hours on a CPU: that mode chooses on val alone."""
    return settings.train.selection_folds >= 2 and settings.train.mode != "finetune"


def refits_segmentation(settings: Settings) -> bool:
    """Whether the segmentation head is refitted per fold (its training cells are worth keeping)."""
    return chooses_out_of_fold(settings) and settings.anomaly.segmentation_decides


def out_of_fold(
    settings: Settings,
    ds: Dataset,
    manuals: list[Manual],
    train: list[Sample],
    fit_classifier: FitClassifier | None,
    anomaly: AnomalyBuild | None,
    text: TextBank,
    device: torch.device,
    progress: bool = False,
) -> dict[str, SplitOutputs]:
    """product -> its train defects, each scored by parts refitted without its fold; products
    without train defects are absent. Parts that learn nothing from defects (the bank) run as
    they are; the segmentation head is refitted only where it may decide."""
    k = settings.train.selection_folds
    if not chooses_out_of_fold(settings) or not any(s.is_defect for s in train):
        return {}
    fold_of = part_folds(train, k, settings.train.seed)
    rng = random.Random(settings.train.seed)
    scored: set[Path] = set()
    for product in sorted({s.product for s in train}):
        defects = [s.path for s in train if s.product == product and s.is_defect]
        scored |= set(rng.sample(defects, min(len(defects), MAX_SCORED)))
    refit_seg = anomaly is not None and bool(anomaly.seg_heads) and refits_segmentation(settings)
    runs: dict[str, list[SplitOutputs]] = defaultdict(list)
    for fold in range(k):
        keep = [s for s in train if fold_of[s.path] != fold]
        held = [s for s in train if fold_of[s.path] == fold and s.path in scored]
        if not held or not any(s.is_defect for s in keep):
            continue
        parts: dict[str, Part] = {}
        if fit_classifier is not None:
            parts["classifier"] = fit_classifier(keep)
        if anomaly is not None:
            build = replace(anomaly, seg_heads={}, specs=dict(anomaly.specs))
            if refit_seg:
                fit_segmentation(build, ds.with_train(keep), settings.anomaly, device, settings.max_image_pixels,
                                 settings.train.seed, progress=False)  # fmt: skip
            parts["anomaly"] = build.part(text, device)
        for m in manuals:
            mine = [s for s in held if s.product == m.product]
            if mine:
                out = collect(parts, m, mine, settings.max_image_pixels, progress=progress, bad=ds.bad)
                if len(out.target):
                    runs[m.product].append(out)
        if progress:
            print(f"selection fold {fold + 1}/{k}: {len(held)} train defects scored by parts fitted on {len(keep)}")
    return {p: concat(outs) for p, outs in runs.items()}
