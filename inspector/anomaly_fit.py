"""Build the anomaly branch from a dataset: per product a memory bank of good patches (greedy
coreset), the input view chosen among the candidates (inspector/anomaly_views.py: on parts the
bank never saw), and a region type head per patch extractor trained on the train defects.

The bank is built from every good train and calibration part, and cross-fitted: the calibration
parts are dealt into folds, and each fold is scored by a bank built without it. The thresholds
then come from scores of parts no bank had seen, yet the station's bank has seen them all (a
product with few good parts needs every one of them in its bank and in its calibration)."""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from inspector.anomaly_views import check_sizes, distinct_views, image_sizes, parse_candidate, view_judges
from inspector.dataset import CALIBRATION, Dataset, Sample
from inspector.errors import DataError, ImageError
from inspector.feature_memo import FeatureMemo, MemoExtractor, active_memo, digest
from inspector.images import DRAFT_SIZE, load_image
from inspector.parts.anomaly import AnomalyPart, view_of
from inspector.settings import AnomalySettings
from inspector.text_bank import TextBank
from models.anomaly import (
    MemoryBanks,
    PatchExtractor,
    RegionTypeHead,
    SegmentationHead,
    create_patch_extractor,
    greedy_coreset,
    mirrors,
)
from models.card import AnomalySpec, AnomalyView
from models.decision import auroc, low_frr_escape, win_rate


@dataclass(frozen=True)
class Fold:
    """Calibration parts ``held`` out of ``bank``, which was built from the ``sources`` images."""

    held: frozenset[Path]
    sources: frozenset[Path]
    bank: torch.Tensor


@dataclass
class AnomalyBuild:
    extractors: dict[str, PatchExtractor]
    banks: dict[str, MemoryBanks]
    specs: dict[str, AnomalySpec]  # product -> its bank as built
    heads: dict[str, RegionTypeHead] = field(default_factory=dict)
    folds: dict[str, list[Fold]] = field(default_factory=dict)  # product -> its cross-fit banks
    seg_heads: dict[str, SegmentationHead] = field(default_factory=dict)  # product -> its segmentation head
    # the segmentation head's training cells by image: refitting it per selection fold reads them again
    seg_cells: dict[Path, tuple[torch.Tensor, torch.Tensor, bool]] = field(default_factory=dict)

    def part(self, text: TextBank | None, device: torch.device) -> AnomalyPart:
        views = {p: s.view for p, s in self.specs.items()}
        return AnomalyPart(self.extractors, self.banks, views, self.heads, text, device, self.seg_heads)

    def fold_parts(
        self, product: str, text: TextBank | None, device: torch.device
    ) -> list[tuple[frozenset[Path], AnomalyPart]]:
        """(held-out calibration parts, the part that scores them) per fold of ``product``; none
        for a product without a bank (steel-strip: no good parts)."""
        if product not in self.specs:
            return []
        view = self.specs[product].view
        out = []
        for fold in self.folds.get(product, []):
            banks = MemoryBanks(self.extractors[view.backbone].dim, device=device)
            banks.add(product, fold.bank)
            # the segmentation head learnt on train parts only: the held-out parts are new to it too
            seg = {product: self.seg_heads[product]} if product in self.seg_heads else {}
            part = AnomalyPart(self.extractors, {view.backbone: banks}, {product: view}, self.heads, text, device, seg)
            out.append((fold.held, part))
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for backbone, banks in self.banks.items():
            for product in banks.products():
                out[f"bank/{backbone}/{product}"] = banks.bank(product)
        for backbone, head in self.heads.items():
            out |= {f"head/{backbone}/{k}": v for k, v in head.state_dict().items()}
        for product, seg in self.seg_heads.items():
            out |= {f"seg/{product}/{k}": v for k, v in seg.state_dict().items()}
        return out


def decode(sample: Sample, max_pixels: int) -> np.ndarray:
    return load_image(sample.path, max_pixels=max_pixels, draft_size=DRAFT_SIZE)


def features(
    extractor: PatchExtractor, view: AnomalyView, samples: list[Sample], device: torch.device, max_pixels: int,
    desc: str = "", progress: bool = False,
) -> Iterator[tuple[Sample, torch.Tensor]]:  # fmt: skip
    """(sample, patch features [D, h, w]) per image; a good image that cannot be read is an error."""
    part = AnomalyPart({view.backbone: extractor}, {}, {}, {}, None, device)
    with torch.inference_mode():
        for s in tqdm(samples, desc=desc, disable=not progress, leave=False):
            try:
                x = view_of(decode(s, max_pixels), view, extractor)
            except ImageError as exc:
                raise DataError(f"{exc} (a good image of {s.product}: fix or remove it)") from None
            for _, f in part.features([x], view):
                yield s, f[0]


def patch_pools(
    extractor: PatchExtractor, view: AnomalyView, samples: list[Sample], cfg: AnomalySettings,
    device: torch.device, max_pixels: int, progress: bool, seed: int = 0,
) -> dict[Path, torch.Tensor]:  # fmt: skip
    """Per good image, a random sample of its patch features [n, D] (the pool a coreset picks from)."""
    per_image = max(16, cfg.pool_size // max(1, len(samples)))
    g = torch.Generator().manual_seed(seed)
    pools = {}
    for s, f in features(extractor, view, samples, device, max_pixels, f"bank {samples[0].product}", progress):
        patches = f.flatten(1).T  # [h*w, D]
        if len(patches) > per_image:
            patches = patches[torch.randperm(len(patches), generator=g)[:per_image].to(patches.device)]
        pools[s.path] = patches
    return pools


def coreset_bank(
    pools: list[torch.Tensor],
    cfg: AnomalySettings,
    start: torch.Tensor | None = None,
    n: int | None = None,
    memo: FeatureMemo | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (the bank [n, D], its rows' indices into the concatenated pools, in greedy order).

    ``seed`` draws the greedy's first row and its random projection: banks of other seeds cover
    the same patches by other paths, and their spread is part of a model's seed-to-seed spread.

    ``memo``: a selection already made on the very same patches is taken from it; the greedy is
    deterministic, so the bank is the one it would build again (the demo's retraining rebuilds
    the banks of products whose good images did not change; seconds on the demo's cells)."""
    x = torch.cat(pools)
    n = n or min(cfg.bank_size, max(16, round(cfg.coreset_ratio * len(x))))
    key = ("coreset", n, seed, digest(x), None if start is None else digest(start)) if memo is not None else None
    idx = memo.get(key) if memo is not None else None
    if idx is None:
        idx = greedy_coreset(x, n, seed=seed, start=start)
        if memo is not None:
            memo.put(key, idx.cpu())
    return x[idx].cpu(), idx.to(x.device)


def deal_folds(samples: list[Sample], k: int) -> list[list[Sample]]:
    """``samples`` dealt into at most ``k`` folds, whole units (physical parts, crops of one
    origin image) at a time, by a stable hash so that reruns agree."""
    groups: dict[str, list[Sample]] = {}
    for s in samples:
        groups.setdefault(s.unit, []).append(s)
    order = sorted(groups, key=lambda g: hashlib.sha1(f"fold|{g}".encode()).hexdigest())
    folds: list[list[Sample]] = [[] for _ in range(min(k, len(order)))]
    for i, g in enumerate(order):
        folds[i % len(folds)].extend(groups[g])
    return [f for f in folds if f]


def cross_fit(
    pools: dict[Path, torch.Tensor],
    calibration: list[Sample],
    cfg: AnomalySettings,
    full: torch.Tensor,
    memo: FeatureMemo | None = None,
    seed: int = 0,
) -> list[Fold]:
    """One bank per fold of the calibration parts, from every pooled image outside the fold.

    Each starts from the station's bank (``full``: its rows in the concatenated ``pools``) less
    the fold's patches and goes on greedily to the same size (the calibration parts are scored
    by banks as large as the one that will score the line). No held-out patch is in it, and
    their only trace is that their neighbours were chosen less (they covered them in the full
    run): a fold's bank is, if anything, farther from its parts than one built from scratch.
    Measured on 300 solar cells' patches: a quarter of the time of a fresh coreset, the same
    coverage radius, held-out parts' patch distances 0.4-0.7 % larger on average.
    """
    sizes = torch.tensor([len(v) for v in pools.values()])
    full = full.cpu()
    out = []
    for fold in deal_folds(calibration, cfg.calibration_folds):
        held = frozenset(s.path for s in fold)
        keep = torch.tensor([p not in held for p in pools]).repeat_interleave(sizes)
        if not keep.any():
            continue
        renumber = torch.cumsum(keep, 0) - 1  # row in the full pool -> row in the fold's pool
        start = renumber[full[keep[full]]]
        bank, _ = coreset_bank([v for p, v in pools.items() if p not in held], cfg, start, len(full), memo, seed)
        out.append(Fold(held, frozenset(p for p in pools if p not in held), bank))
    return out


def _score(part: AnomalyPart, product: str, samples: list[Sample], max_pixels: int, batch: int = 16) -> np.ndarray:
    out = []
    for i in range(0, len(samples), batch):
        views = [part.view(decode(s, max_pixels), product) for s in samples[i : i + batch]]
        out += [o.scores["anomaly"] for o in part.run(views, product, None)]
    return np.array(out)


def _judge(
    view: AnomalyView, ext: PatchExtractor, bank: torch.Tensor, pools: dict[Path, torch.Tensor], rows: torch.Tensor,
    judged: list[Sample], held: list[Sample], cfg: AnomalySettings, alpha: float, device: torch.device,
    max_pixels: int, memo: FeatureMemo | None, seed: int,
) -> tuple[tuple[float, float, float], str, np.ndarray, list[Sample]]:  # fmt: skip
    """(rank, note, scores, parts) of one candidate: its escape near the promised rate, its AUROC, its
    cost, and its score of each judged part (val's and the train defects, then the held-out good parts
    fold by fold)."""
    product = judged[0].product
    runs = [(judged, bank)] + [
        ([s for s in held if s.path in fold.held], fold.bank) for fold in cross_fit(pools, held, cfg, rows, memo, seed)
    ]
    scores, ms = [], 0.0
    for samples, b in runs:
        one = MemoryBanks(ext.dim, device=device)
        one.add(product, b)
        part = AnomalyPart({view.backbone: ext}, {view.backbone: one}, {product: view}, {}, None, device)
        t = time.perf_counter()
        scores.append(_score(part, product, samples, max_pixels))
        ms = ms or (time.perf_counter() - t) * 1000 / len(samples)  # the station's cost: the full bank's run
    score = np.concatenate(scores)
    is_defect = np.array([s.is_defect for samples, _ in runs for s in samples], dtype=bool)
    # near the promise (1-3x the target), not out to 10x as the deciding scores are chosen on val alone:
    # the view serves the promised rate, and a few hundred good parts put several above each quantile
    esc, auc = low_frr_escape(score, is_defect, alpha, span=3), auroc(score, is_defect)
    note = f"{view.label}: escape {esc:.3f}, AUROC {auc:.3f} on {int((~is_defect).sum())} good and "
    parts = [p for samples, _ in runs for p in samples]
    return (esc, -auc, ms), note + f"{int(is_defect.sum())} defect parts, {ms:.0f} ms/image", score, parts


def _beyond_chance(best: _Tried, first: _Tried, alpha: float, confidence: float) -> tuple[_Tried, str]:
    """The first candidate (``auto``: the part near its own size) unless the best-ranked one lets fewer
    judged defects through in ``confidence`` of the redraws of the judged parts, the rule the deciding
    scores follow. On the demo's cells 160 px ranked a hair better (0.450 vs 0.473 mono, 0.624 vs 0.626
    poly) yet let 71-76 % of poly's val defects through at the calibrated threshold against 64-65 %."""
    if best is first or best.scores is None or first.scores is None:
        return best, ""
    assert [p.path for p in best.parts] == [p.path for p in first.parts]  # the same parts, scored both ways
    is_defect = np.array([p.is_defect for p in first.parts], dtype=bool)
    groups = np.array([p.unit for p in first.parts])
    rate = win_rate(best.scores, first.scores, is_defect, groups, alpha, span=3)
    if rate >= confidence:
        return best, f"{best.view.label} beats {first.view.label} in {rate:.0%} of part redraws"
    return (
        first,
        f"kept {first.view.label}: {best.view.label} beats it in {rate:.0%} of part redraws, needs {confidence:.0%}",
    )


@dataclass
class _Tried:
    """One candidate view of a product, built and judged (``view_judges``)."""

    rank: tuple[float, float, float]  # (escape, -AUROC, ms per image) on parts its bank never saw: lowest wins
    view: AnomalyView
    bank: torch.Tensor
    pools: dict[Path, torch.Tensor]
    rows: torch.Tensor  # the bank's rows in the concatenated pools
    spec: AnomalySpec
    note: str
    memo_keys: list[tuple]  # the features it added to the memo
    scores: np.ndarray | None = None  # of the judged parts ...
    parts: list[Sample] = field(default_factory=list)  # ... in this order, the same for every candidate


def fit_anomaly(
    cfg: AnomalySettings,
    ds: Dataset,
    alpha: float | Callable[[str], float],
    device: torch.device,
    max_pixels: int,
    progress: bool = True,
    memo: FeatureMemo | None = None,
    seed: int = 0,
) -> AnomalyBuild | None:
    """A bank for every product with enough good train parts; None when no product has any.
    ``memo``: keep patch features across calls (default: the enclosing ``remember_patch_features``).
    ``seed``: the banks' random choices (which patches are pooled, the coreset's path)."""
    memo = memo if memo is not None else active_memo()
    extractors: dict[str, PatchExtractor] = {}
    banks: dict[str, MemoryBanks] = {}
    specs: dict[str, AnomalySpec] = {}
    folds: dict[str, list[Fold]] = {}
    doubtful = ds.doubtful_good()
    for product in ds.products():
        a = alpha(product) if callable(alpha) else alpha  # the promise judges views at its own rate
        calibration = [s for s in ds.split(CALIBRATION) if s.product == product]
        train_good = [s for s in ds.split("train") if s.product == product and not s.is_defect]
        good = [s for s in train_good if s.path not in doubtful] + calibration
        if len(good) < cfg.min_good:
            if good:
                print(f"{product}: {len(good)} good images, a bank needs {cfg.min_good}: no anomaly part")
            continue
        sizes = image_sizes(good)
        check_sizes(product, good, sizes)
        wanted = [cfg.views[product]] if product in cfg.views else cfg.candidates
        val = [s for s in ds.split("val") if s.product == product]
        held, extra = view_judges(ds, product, good, cfg.view_judges) if any(s.is_defect for s in val) else ([], [])
        judged = val + extra
        judged_defect = np.array([s.is_defect for s in judged])
        tried: list[_Tried] = []
        candidates = [parse_candidate(text, sizes).model_copy(update={"precision": cfg.precision}) for text in wanted]
        views = distinct_views(candidates, sizes, product)
        left = [f"{v.label} left out: nearly the same input" for v in candidates if v not in views]
        if len(views) > 1 and not (judged_defect.any() and (~judged_defect).any()):
            # nothing could prefer another view: only the first is built
            print(f"{product}: no val defect and good parts to judge views on, {views[0].label} (the first) kept")
            left += [f"{v.label} left out: nothing to judge it on" for v in views[1:]]
            views = views[:1]
        twins = ", ".join(left)
        for view in views:
            if view.backbone not in extractors:
                made = create_patch_extractor(view.backbone).to(device)
                extractors[view.backbone] = made if memo is None else MemoExtractor(made, memo)
            ext = extractors[view.backbone]
            kept_before = len(memo.keys()) if memo is not None else 0  # nothing is forgotten until all are tried
            start = time.perf_counter()
            pools = patch_pools(ext, view, good, cfg, device, max_pixels, progress, seed)
            bank, rows = coreset_bank(list(pools.values()), cfg, memo=memo, seed=seed)
            seconds = time.perf_counter() - start
            spec = AnomalySpec(
                view=view, bank_patches=len(bank), bank_images=len(good), build_seconds=round(seconds, 1)
            )
            rank, note, scores, parts = (0.0, 0.0, 0.0), f"{view.label} (the only candidate)", None, []
            if twins:
                note = f"{view.label} (the only candidate; {twins})"
            if len(views) > 1:
                rank, note, scores, parts = _judge(
                    view, ext, bank, pools, rows, judged, held, cfg, a, device, max_pixels, memo, seed
                )
            added = memo.keys()[kept_before:] if memo is not None else []
            tried.append(_Tried(rank, view, bank, pools, rows, spec, note, added, scores, parts))
            print(f"{product}: bank of {len(bank)} patches from {len(good)} good images, {view.label}, {seconds:.0f} s")
        first = tried[0]
        tried.sort(key=lambda t: t.rank)
        best, verdict = _beyond_chance(tried[0], first, a, cfg.view_confidence)
        view, bank, pools, rows, spec = best.view, best.bank, best.pools, best.rows, best.spec
        spec.selected_on = "; ".join([*([verdict] if verdict else []), *(t.note for t in tried)])
        tried = [best, *(t for t in tried if t is not best)]
        if memo is not None and memo.limit is not None:  # the views not chosen are not extracted again
            memo.forget([k for t in tried[1:] for k in t.memo_keys])
        del tried, best
        banks.setdefault(view.backbone, MemoryBanks(extractors[view.backbone].dim, device=device)).add(product, bank)
        specs[product] = spec
        start = time.perf_counter()
        folds[product] = cross_fit(pools, calibration, cfg, rows, memo, seed)
        if folds[product]:
            units = len({s.unit for s in calibration})
            print(f"{product}: {len(folds[product])} cross-fit banks for {len(calibration)} calibration images "
                  f"of {units} parts, {time.perf_counter() - start:.0f} s")  # fmt: skip
    if not specs:
        return None
    used = {s.view.backbone for s in specs.values()}
    return AnomalyBuild({b: e for b, e in extractors.items() if b in used}, banks, specs, folds=folds)


def fit_type_heads(
    build: AnomalyBuild, ds: Dataset, text: TextBank, device: torch.device, max_pixels: int, seed: int = 0,
    progress: bool = True, mirrors_below: int = 0,
) -> None:  # fmt: skip
    """Train one region type head per patch extractor on the train defects of its products; the
    images of a type with fewer than ``mirrors_below`` of them are learnt mirrored too."""
    part = build.part(text, device)
    by_backbone: dict[str, list[Sample]] = {}
    for s in ds.split("train"):
        if s.is_defect and s.product in build.specs:
            by_backbone.setdefault(build.specs[s.product].view.backbone, []).append(s)
    for backbone, samples in by_backbone.items():
        products = sorted({s.product for s in samples})
        if all(len(ds.manuals[p].defects) < 2 for p in products):
            continue  # one defect type per product: nothing to tell apart
        few = few_example_types(samples, mirrors_below)
        pooled, product_idx, target = [], [], []
        for s in tqdm(samples, desc=f"region features {backbone}", disable=not progress, leave=False):
            try:
                image = decode(s, max_pixels)
            except ImageError:
                continue  # a broken defect image only costs the head one example
            view = part.view(image, s.product)
            views = [view, *mirrors(view)] if (s.product, s.defect_type) in few else [view]
            pooled.extend(part.region_features(views, s.product))
            product_idx.extend([products.index(s.product)] * len(views))
            target.extend([list(ds.manuals[s.product].defects).index(s.defect_type)] * len(views))
        texts = [text.embed(ds.manuals[p])[1:] for p in products]  # [T_p, Dt] each, ok dropped
        width = max(len(t) for t in texts)
        bank = torch.zeros(len(products), width, texts[0].shape[1])
        mask = torch.zeros(len(products), width, dtype=torch.bool)
        for i, t in enumerate(texts):
            bank[i, : len(t)], mask[i, : len(t)] = t, True
        head = train_type_head(
            torch.stack(pooled),
            torch.tensor(product_idx),
            torch.tensor(target),
            bank,
            mask,
            build.extractors[backbone].dim,
            seed,
        )
        build.heads[backbone] = head.to(device).eval()


def few_example_types(samples: list[Sample], below: int) -> set[tuple[str, str]]:
    """(product, defect type) pairs with fewer than ``below`` train images."""
    counts = Counter((s.product, s.defect_type) for s in samples)
    return {k for k, n in counts.items() if n < below}


def train_type_head(
    pooled: torch.Tensor, product: torch.Tensor, target: torch.Tensor, text: torch.Tensor, mask: torch.Tensor,
    feat_dim: int, seed: int = 0, steps: int = 600,
) -> RegionTypeHead:  # fmt: skip
    """Cross-entropy over each product's defect types, every (product, type) drawn equally often."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = RegionTypeHead(feat_dim, text.shape[-1])
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.05)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (p, t) in enumerate(zip(product.tolist(), target.tolist(), strict=True)):
        groups.setdefault((p, t), []).append(i)
    keys = sorted(groups)
    head.train()
    for _ in range(steps):
        idx = torch.tensor([rng.choice(groups[keys[rng.randrange(len(keys))]]) for _ in range(64)])
        x = pooled[idx] + 0.05 * pooled[idx].std(0) * torch.randn_like(pooled[idx])  # feature noise: few examples
        logits = head(x, text[product[idx]], mask[product[idx]])
        loss = F.cross_entropy(logits, target[idx], label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head.eval()
