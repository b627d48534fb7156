"""What training reads: cached backbone features (or the frozen stages' maps, or decoded images
for end-to-end fine-tuning) with their labels, and the data, encoders and caches prepared once
for a training or a benchmark's many trainings."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset as TorchDataset

from inspector.checkpoint import resolve_device
from inspector.dataset import Dataset, Sample, load_dataset
from inspector.feature_memo import FeatureMemo
from inspector.features import FeatureCache, Features, view_tensor
from inspector.manual import Manual
from inspector.settings import Settings
from inspector.text_bank import TextBank
from models import create_image_encoder


def _labelled(inputs: dict[str, torch.Tensor], product: torch.Tensor, target: torch.Tensor, i: int) -> dict:
    """One training item: the model's inputs and sample ``i``'s labels."""
    return {**inputs, "product": product[i], "target": target[i], "is_defect": target[i] != 0}


class FeatureSet(TorchDataset):
    """Cached features of labelled samples; each item draws one of the cached views."""

    def __init__(self, views: list[Features], product: torch.Tensor, target: torch.Tensor) -> None:
        self.views, self.product, self.target = views, product, target

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v = self.views[random.randrange(len(self.views))]
        return _labelled({"tokens": v.tokens[i], "pooled": v.pooled[i]}, self.product, self.target, i)


class PrefixSet(FeatureSet):
    """Cached maps of the encoder's frozen stages: fine-tuning trains its last stages on them."""

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        v = self.views[random.randrange(len(self.views))]
        return _labelled({"prefix": v.tokens[i]}, self.product, self.target, i)


class ImageSet(TorchDataset):
    """Decoded images for end-to-end fine-tuning (augmented when ``train``)."""

    def __init__(
        self, samples: list[Sample], encoder, product: torch.Tensor, target: torch.Tensor, max_pixels: int, train: bool
    ) -> None:
        self.samples, self.encoder, self.product, self.target = samples, encoder, product, target
        self.max_pixels, self.train = max_pixels, train

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        view = random.randrange(1, 1_000_000) if self.train else 0  # a fresh augmentation every epoch
        image = view_tensor(self.samples[i].path, self.encoder, view, self.max_pixels)
        return _labelled({"image": image}, self.product, self.target, i)


@dataclass
class Prepared:
    """Everything training and evaluation need, derived once from settings and data."""

    ds: Dataset
    manuals: list[Manual]
    device: torch.device
    cache: FeatureCache
    text: TextBank
    bank: torch.Tensor  # [P, Cmax, Dt]
    bank_mask: torch.Tensor  # [P, Cmax]
    calibration: dict[str, int] = field(default_factory=dict)  # good parts held out per product
    _memo: dict = field(default_factory=dict)  # feature sets already read: benchmarks train many models
    patch_memo: FeatureMemo | None = None  # patch features kept across models (benchmarks set one)

    def index(self, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        pos = {m.product: i for i, m in enumerate(self.manuals)}
        product = torch.tensor([pos[s.product] for s in samples], dtype=torch.long)
        target = torch.tensor([self.manuals[pos[s.product]].classes.index(s.defect_type) for s in samples])
        return product, target

    def features(self, samples: list[Sample], views: int, progress: bool) -> tuple[FeatureSet, list[Sample]]:
        key = (tuple(s.path for s in samples), views)
        if key not in self._memo:
            self._memo[key] = self._features(samples, views, progress)
        fs, kept = self._memo[key]
        return FeatureSet(fs.views, fs.product, fs.target), kept

    def prefixes(
        self, samples: list[Sample], views: int, stages: int, cache_dir: Path | None, progress: bool
    ) -> tuple[PrefixSet, list[Sample]]:
        """What the encoder's frozen stages make of ``samples`` (``views`` views each), for
        fine-tuning its last ``stages`` stages; cached on disk like frozen features."""
        key = ("prefix", stages, tuple(s.path for s in samples), views)
        if key not in self._memo:
            c = self.cache
            cache = FeatureCache(c.encoder, cache_dir, self.device, c.max_pixels, prefix_stages=stages)
            self._memo[key] = self._features(samples, views, progress, cache)
        fs, kept = self._memo[key]
        return PrefixSet(fs.views, fs.product, fs.target), kept

    def _features(
        self, samples: list[Sample], views: int, progress: bool, cache: FeatureCache | None = None
    ) -> tuple[FeatureSet, list[Sample]]:
        extracted = []
        for v in range(views):
            feats, bad = (cache or self.cache).extract(samples, v, progress=progress)
            if v == 0:
                self.ds.bad.extend(bad)
                kept = feats.kept
            extracted.append(feats)
        samples = [samples[i] for i in kept]
        product, target = self.index(samples)
        return FeatureSet(extracted, product, target), samples

    def step(self, model):
        def run(b):
            text, mask = self.bank[b["product"]], self.bank_mask[b["product"]]
            if "image" in b:
                return model(b["image"], text, mask)
            if "prefix" in b:
                return model.forward_prefixed(b["prefix"].float(), text, mask)
            return model(b["tokens"].float(), b["pooled"].float(), text, mask)

        return run


def prepare(
    settings: Settings, roots: list[Path], products: list[str] | None = None, finetune: bool = False
) -> Prepared:
    """Load the data, hold out the calibration parts, and set up encoders and caches."""
    ds = load_dataset(roots, products)
    ds.check_bad_share(settings.train.max_bad_share)
    calibration = ds.hold_out_calibration(settings.verdict.target_frr_of, settings.verdict.calibration_share)
    device = resolve_device(settings.model.device)
    encoder = create_image_encoder(settings.model.backbone, input_size=settings.model.input_size)
    text = TextBank.on_first_need(settings.model.text_encoder, settings.model.text_source, settings.cache_dir)
    manuals = [ds.manuals[p] for p in ds.products()]
    bank_t, mask_t = text.padded(manuals)
    cache = FeatureCache(encoder, None if finetune else settings.cache_dir, device, settings.max_image_pixels)
    return Prepared(ds, manuals, device, cache, text, bank_t.to(device), mask_t.to(device), calibration)


def limit_per_class(samples: list[Sample], k: int, seed: int) -> list[Sample]:
    """At most ``k`` samples of each (product, class), drawn reproducibly: the low-data setting."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.product, s.defect_type), []).append(s)
    out = []
    for key in sorted(groups):
        g = groups[key]
        out.extend(rng.sample(g, min(k, len(g))))
    return out
