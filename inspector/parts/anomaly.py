"""The anomaly branch as an engine part: patch features of the product's image against that
product's memory bank of good patches -> an anomaly map, the image's anomaly score (the map's
maximum), and, with a trained type head, the defect type read from the anomalous region.

A product with a segmentation head also gets a "segmentation" score. Taught by defect masks,
the score is the head's strongest logit and the map is its P(defect) per region: the head
finds its defects where the bank's distances are noisy, so typing reads that region too.
Taught by image labels only, the score is the soft maximum it learnt with, and the map and
the typing region stay the bank's: it never learnt where a defect is."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from inspector.manual import Manual
from inspector.text_bank import TextBank
from models.anomaly import (
    MemoryBanks,
    PatchExtractor,
    RegionTypeHead,
    SegmentationHead,
    gaussian_blur,
    region_pool,
    view_shape,
)
from models.card import AnomalyView
from models.transforms import normalize, resize, standardise, to_float
from models.types import PartOutput


def view_of(image: np.ndarray, view: AnomalyView, extractor: PatchExtractor) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [3, h, w] as ``view`` says."""
    return resize(image, view_shape(image.shape[0], image.shape[1], view, extractor.multiple))


class AnomalyPart:
    name = "anomaly"

    def __init__(
        self,
        extractors: dict[str, PatchExtractor],
        banks: dict[str, MemoryBanks],
        views: dict[str, AnomalyView],
        type_heads: dict[str, RegionTypeHead],
        text: TextBank | None,
        device: torch.device,
        seg_heads: dict[str, SegmentationHead] | None = None,
    ) -> None:
        """Keyed by backbone: ``extractors``, ``banks`` (each holding its products' banks) and
        ``type_heads``; by product: ``views`` (each one's input view) and ``seg_heads``."""
        self.extractors, self.banks, self.views, self.type_heads = extractors, banks, views, type_heads
        self.text, self.device, self.seg_heads = text, device, seg_heads or {}

    def knows(self, product: str) -> bool:
        return product in self.views

    def view(self, image: np.ndarray, product: str) -> torch.Tensor:
        v = self.views[product]
        return view_of(image, v, self.extractors[v.backbone])

    def features(self, views: list[torch.Tensor], view: AnomalyView) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(indices, patch features [b, D, h, w]) per group of same-shaped inputs made as ``view``
        says, in its numerics: fitted views go as one batch, scaled views of other shapes one by one."""
        extractor = self.extractors[view.backbone]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, v in enumerate(views):
            groups.setdefault(tuple(v.shape), []).append(i)
        for idx in groups.values():
            x = to_float(torch.stack([views[i] for i in idx]).to(self.device))
            if view.standardise:
                x = standardise(x)
            yield idx, extractor(normalize(x, extractor.mean, extractor.std), view.precision)

    @torch.inference_mode()
    def run(self, views: list[torch.Tensor], product: str, manual: Manual | None) -> list[PartOutput]:
        view = self.views[product]
        backbone = view.backbone
        head = self.type_heads.get(backbone)
        text = None
        if head is not None and manual is not None and manual.defects and self.text is not None:
            text = self.text.embed(manual)[1:].to(self.device)  # [T, Dt]: the defect types, not ok
        outputs: list[PartOutput | None] = [None] * len(views)
        for idx, feats in self.features(views, view):
            amap = self.banks[backbone](feats, product)  # [b, h, w]
            seg = self.segment(feats, product)
            region = torch.sigmoid(seg) if seg is not None and self.seg_heads[product].locates else amap
            seg_score = None if seg is None else self.seg_heads[product].image_score(seg).cpu().numpy()
            types = head.probs(feats, region, text).cpu().numpy() if text is not None else None
            amap_np, region_np = amap.float().cpu().numpy(), region.float().cpu().numpy()
            for k, i in enumerate(idx):
                t = None if types is None else types[k]
                scores = {"anomaly": float(amap_np[k].max())}
                if seg_score is not None:
                    scores["segmentation"] = float(seg_score[k])
                outputs[i] = PartOutput(scores, type_probs=t, anomaly_map=region_np[k])
        return outputs  # type: ignore[return-value]

    def segment(self, feats: torch.Tensor, product: str) -> torch.Tensor | None:
        """[b, D, h, w] -> the segmentation head's logits [b, h, w], lightly blurred like the bank's
        map (one noisy cell should not decide a part); None for a product without one."""
        head = self.seg_heads.get(product)
        return None if head is None else gaussian_blur(head(feats), 0.5)

    @torch.inference_mode()
    def region_features(self, views: list[torch.Tensor], product: str) -> torch.Tensor:
        """[B, 2D] what the type head reads: the anomalous region's features and the global mean."""
        view = self.views[product]
        backbone = view.backbone
        sharpness = self.type_heads[backbone].sharpness if backbone in self.type_heads else 0.1
        out: list[torch.Tensor | None] = [None] * len(views)
        for idx, feats in self.features(views, view):
            seg = self.segment(feats, product)
            locates = seg is not None and self.seg_heads[product].locates
            region = torch.sigmoid(seg) if locates else self.banks[backbone](feats, product)
            pooled = region_pool(feats, region, sharpness).cpu()
            for k, i in enumerate(idx):
                out[i] = pooled[k]
        return torch.stack(out)  # type: ignore[arg-type]
