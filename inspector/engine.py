"""The inference engine: images of a product in, verdicts in the manual's words out.

One checkpoint serves every product it was trained on, and any product whose manual it is
given (a new product is a new manual). Manual embeddings are computed once per manual
version and kept. Without a manual the verdict comes from the image alone and says so.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from inspector.checkpoint import load_model, model_name, resolve_device
from inspector.errors import ManualError, UnknownProductError
from inspector.images import load_image
from inspector.manual import Manual, parse_manual
from inspector.reference import load_reference
from models import Thresholds
from models.drift import image_statistics
from models.transforms import normalize, resize, to_float

_NO_MANUAL = object()


@dataclass
class Verdict:
    product: str
    verdict: str  # accept | warn | reject
    defect_type: str | None  # the manual's id for the defect, None when accepted or image-only
    confidence: float  # probability of what the verdict says (ok, or the named defect)
    defect_score: float  # calibrated P(defective): the number the thresholds cut
    reason: str  # the manual's section for the defect, quoted, or why it was accepted
    image_only: bool = False
    class_scores: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    attention: np.ndarray | None = field(default=None, repr=False)  # [h, w] where the model looked
    signals: Signals | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("attention")
        d.pop("signals")
        return d


@dataclass
class Signals:
    """What drift checks need of one image (stored beside its inspection)."""

    embedding: np.ndarray | None  # pooled feature in the model's reference projection; None without one
    brightness: float
    contrast: float
    sharpness: float
    width: int
    height: int


class Engine:
    def __init__(
        self, model_dir: Path, device: str = "auto", max_pixels: int = 40_000_000, cache_dir: Path | None = None
    ) -> None:
        self.device = resolve_device(device)
        loaded = load_model(Path(model_dir), self.device, cache_dir)
        self.model, self.card, self.encoder, self.bank = loaded.model, loaded.card, loaded.encoder, loaded.bank
        self.model_dir = Path(model_dir)
        self.max_pixels = max_pixels
        self.reference = load_reference(self.model_dir)
        self.channels_last = self.device.type == "cuda"  # convolutions on tensor cores want NHWC
        if self.channels_last:
            torch.backends.cudnn.benchmark = True  # the station's input size is fixed: tune once
            self.encoder.to(memory_format=torch.channels_last)
        self.manuals: dict[str, Manual | object] = {}
        self.manual_texts: dict[str, str] = {}  # product -> sha256 of the text last given, parsed or refused
        for pid, info in self.card["products"].items():
            if info.get("manual"):
                self.manuals[pid] = parse_manual(info["manual"], f"model card ({pid})", pid)

    @property
    def version(self) -> str:
        return model_name(self.model_dir, self.card)

    def set_manual(self, product: str, manual: Manual | None) -> None:
        """Give the engine a product's (new) manual; ``None`` means the product has none."""
        self.manuals[product] = manual if manual is not None else _NO_MANUAL

    def set_manual_text(self, product: str, text: str | None, source: str = "manual") -> None:
        self.manual_texts[product] = hashlib.sha256((text or "").encode()).hexdigest()  # usable or not
        if text is None or not text.strip():
            self.set_manual(product, None)
            return
        try:
            self.set_manual(product, parse_manual(text, source, product))
        except ManualError:
            self.set_manual(product, None)  # an unusable manual must not stop the line: image-only
            raise

    def _thresholds(self, product: str, image_only: bool) -> tuple[Thresholds, list[str]]:
        info = self.card["products"].get(product)
        key = "image_only" if image_only else "thresholds"
        if info is None:
            fallback = self.card["calibration"]["image_only_fallback" if image_only else "fallback"]
            return Thresholds(**fallback), ["uncalibrated: product not in training data, P(defect) > 0.5 rejects"]
        flags = []
        if not image_only and isinstance(self.manuals.get(product), Manual):
            if self.manuals[product].sha256 != info["manual_sha256"]:
                flags.append("manual changed since calibration")
        return Thresholds(**info[key]), flags

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> uint8 [3, S, S] at the model's input size. Thread-safe: the service
        runs it in its decode threads, so the inference thread only stacks."""
        return resize(image, self.encoder.input_size)

    def inspect_arrays(self, product: str, images: list[np.ndarray]) -> list[Verdict]:
        """Classify images (uint8 [H, W, 3]) of one product in one batch."""
        sizes = [(im.shape[1], im.shape[0]) for im in images]
        return self.inspect_prepared(product, torch.stack([self.prepare(im) for im in images]), sizes)

    @torch.inference_mode()
    def inspect_prepared(self, product: str, batch: torch.Tensor, sizes: list[tuple[int, int]]) -> list[Verdict]:
        """Classify a batch from ``prepare`` (uint8 [B, 3, S, S]); ``sizes``: each original (w, h)."""
        if product not in self.manuals and product not in self.card["products"]:
            known = sorted(set(self.manuals) | set(self.card["products"]))
            raise UnknownProductError(f"unknown product '{product}'; known: {', '.join(known)}")
        start = time.perf_counter()
        enc, cuda = self.encoder, self.device.type == "cuda"
        # uint8 crosses to the GPU (a quarter of float32's bytes); the float work happens there
        x = to_float((batch.pin_memory() if cuda else batch).to(self.device, non_blocking=True))
        stats = image_statistics(x).cpu().numpy()
        x = normalize(x, enc.mean, enc.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        manual = self.manuals.get(product, _NO_MANUAL)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            tokens, pooled = enc(x)
            if isinstance(manual, Manual):
                text = self.bank.embed(manual).to(self.device)  # [C, Dt], cached per manual version
                B, C = len(batch), text.shape[0]
                out = self.model(
                    tokens, pooled, text.expand(B, -1, -1), torch.ones(B, C, dtype=torch.bool, device=self.device)
                )
                probs = torch.softmax(out.class_logits.float() / self.model.class_temperature, -1).cpu().numpy()
                attn = out.attention.float().cpu().numpy() if out.attention is not None else None
            else:
                logit = self.model.image_only_defect_logit(pooled)
                scores = torch.sigmoid(logit.float() / self.model.defect_temperature).cpu().numpy()
            embedding = self.reference.projection(pooled.float().cpu().numpy()) if self.reference else None
        ms = (time.perf_counter() - start) * 1000 / len(batch)
        if not isinstance(manual, Manual):
            th, flags = self._thresholds(product, image_only=True)
            verdicts = [self._image_only(product, float(s), th, flags, ms) for s in scores]
        else:
            th, flags = self._thresholds(product, image_only=False)
            verdicts = [
                self._fused(manual, p, None if attn is None else attn[i], th, flags, ms) for i, p in enumerate(probs)
            ]
        for i, (v, (w, h)) in enumerate(zip(verdicts, sizes, strict=True)):
            b, c, sh = map(float, stats[i])
            v.signals = Signals(None if embedding is None else embedding[i], b, c, sh, w, h)
        return verdicts

    def _fused(self, manual: Manual, p: np.ndarray, attn, th: Thresholds, flags: list[str], ms: float) -> Verdict:
        score = float(1 - p[0])
        band = th.verdict(score)
        classes = manual.classes
        top = int(np.argmax(p[1:]) + 1)  # the most likely defect type
        grid = None
        if attn is not None:
            side = round(attn.shape[-1] ** 0.5)
            cls = top if band != "accept" else 0
            grid = attn[cls].reshape(side, side) if side * side == attn.shape[-1] else None
        if band == "accept":
            defect, conf = None, float(p[0])
            reason = f"looks like a good part (defect score {score:.3f} <= {th.warn:.3f})"
        else:
            section = manual.defects[classes[top]]
            defect, conf, reason = section.name, float(p[top]), f"{section.name}: {section.text}"
        scores = dict(zip(classes, map(float, p), strict=True))
        return Verdict(manual.product, band, defect, conf, score, reason, False, scores, flags, ms, grid)

    def _image_only(self, product: str, score: float, th: Thresholds, flags: list[str], ms: float) -> Verdict:
        band = th.verdict(score)
        reason = (
            f"image-only (no usable manual for '{product}'): defect score {score:.3f}; "
            f"reject above {th.reject:.3f}, review above {th.warn:.3f}"
        )
        conf = score if band != "accept" else 1 - score
        return Verdict(product, band, None, conf, score, reason, True, {}, ["image-only", *flags], ms)

    def inspect_files(self, product: str, paths: list[Path], batch_size: int = 16) -> list[Verdict | Exception]:
        """Per file a Verdict, or the error that file raised (the others still get inspected)."""
        results: list[Verdict | Exception] = [None] * len(paths)  # type: ignore[list-item]
        size = 2 * self.encoder.input_size
        for start in range(0, len(paths), batch_size):
            good, arrays = [], []
            for i in range(start, min(start + batch_size, len(paths))):
                try:
                    arrays.append(load_image(paths[i], max_pixels=self.max_pixels, draft_size=size))
                    good.append(i)
                except Exception as exc:  # noqa: BLE001 - reported per file, never stops the batch
                    results[i] = exc
            if arrays:
                for i, v in zip(good, self.inspect_arrays(product, arrays), strict=True):
                    results[i] = v
        return results
