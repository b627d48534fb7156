"""The anomaly branch as an engine part: patch features of the product's image against that
product's memory bank of good patches -> an anomaly map, the image's anomaly score (the map's
maximum), and, with a trained type head, the defect type read from the anomalous region."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from inspector.manual import Manual
from inspector.text_bank import TextBank
from models.anomaly import MemoryBanks, PatchExtractor, RegionTypeHead, region_pool, view_shape
from models.card import AnomalyView
from models.transforms import normalize, resize, to_float
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
    ) -> None:
        """Keyed by backbone: ``extractors``, ``banks`` (each holding its products' banks) and
        ``type_heads``; ``views``: each product's input view."""
        self.extractors, self.banks, self.views, self.type_heads = extractors, banks, views, type_heads
        self.text, self.device = text, device

    def knows(self, product: str) -> bool:
        return product in self.views

    def view(self, image: np.ndarray, product: str) -> torch.Tensor:
        v = self.views[product]
        return view_of(image, v, self.extractors[v.backbone])

    def features(self, views: list[torch.Tensor], backbone: str) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(indices, patch features [b, D, h, w]) per group of same-shaped views: fitted views
        go as one batch, scaled views of other shapes one by one."""
        extractor = self.extractors[backbone]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, v in enumerate(views):
            groups.setdefault(tuple(v.shape), []).append(i)
        for idx in groups.values():
            x = to_float(torch.stack([views[i] for i in idx]).to(self.device))
            yield idx, extractor(normalize(x, extractor.mean, extractor.std))

    @torch.inference_mode()
    def run(self, views: list[torch.Tensor], product: str, manual: Manual | None) -> list[PartOutput]:
        backbone = self.views[product].backbone
        head = self.type_heads.get(backbone)
        text = None
        if head is not None and manual is not None and manual.defects and self.text is not None:
            text = self.text.embed(manual)[1:].to(self.device)  # [T, Dt]: the defect types, not ok
        outputs: list[PartOutput | None] = [None] * len(views)
        for idx, feats in self.features(views, backbone):
            amap = self.banks[backbone](feats, product)  # [b, h, w]
            types = head.probs(feats, amap, text).cpu().numpy() if text is not None else None
            amap_np = amap.float().cpu().numpy()
            for k, i in enumerate(idx):
                t = None if types is None else types[k]
                outputs[i] = PartOutput({"anomaly": float(amap_np[k].max())}, type_probs=t, anomaly_map=amap_np[k])
        return outputs  # type: ignore[return-value]

    @torch.inference_mode()
    def region_features(self, views: list[torch.Tensor], product: str) -> torch.Tensor:
        """[B, 2D] what the type head reads: the anomalous region's features and the global mean."""
        backbone = self.views[product].backbone
        sharpness = self.type_heads[backbone].sharpness if backbone in self.type_heads else 0.1
        out: list[torch.Tensor | None] = [None] * len(views)
        for idx, feats in self.features(views, backbone):
            pooled = region_pool(feats, self.banks[backbone](feats, product), sharpness).cpu()
            for k, i in enumerate(idx):
                out[i] = pooled[k]
        return torch.stack(out)  # type: ignore[arg-type]
