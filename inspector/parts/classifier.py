"""The cross-modal classifier as an engine part: the manual's class descriptions against the
image, or (without a manual) the image-only defect head."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from inspector.manual import Manual
from inspector.text_bank import TextBank
from models import Classifier, ImageEncoder
from models.inference import Precision, autocast, channels_last, inference_copy
from models.transforms import normalize, resize, to_float
from models.types import PartOutput

CLASSIFIER, DEFECT_HEAD = "classifier", "defect_head"  # the names of its two scores
# the [3, s, s] view's right-angle turns and mirrors (as training augments), the view first and its
# three mirrors next: a decision that averages types over 4 averages the view and its mirrors
TURNS: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda v: v,
    lambda v: v.flip(-1),  # left-right
    lambda v: v.flip(-2),  # top-bottom
    lambda v: v.flip((-2, -1)),  # both: a half turn
    lambda v: v.transpose(-2, -1),  # across the diagonal
    lambda v: v.transpose(-2, -1).flip(-1),  # a quarter turn
    lambda v: v.transpose(-2, -1).flip(-2),  # a quarter turn the other way
    lambda v: v.transpose(-2, -1).flip((-2, -1)),  # across the other diagonal
)


class ClassifierPart:
    name = "classifier"

    def __init__(
        self,
        model: Classifier,
        encoder: ImageEncoder,
        bank: TextBank,
        device: torch.device,
        precision: Precision,
    ) -> None:
        """``precision``: the numerics its card's temperatures and thresholds were fitted with."""
        # a copy with batch norms folded and NHWC weights (a fifth off lite0's CPU time; tensor
        # cores want NHWC too); the trained encoder stays as it was, to be saved or fine-tuned
        self.model, self.encoder, self.bank, self.device = model, inference_copy(encoder), bank, device
        self.input_size = encoder.input_size
        self.precision = precision
        self.cuda = device.type == "cuda"
        if self.cuda:  # the input size is fixed: tune once
            torch.backends.cudnn.benchmark = True

    def knows(self, product: str) -> bool:
        return True  # it reads any product's manual

    def view(self, image: np.ndarray, product: str) -> torch.Tensor:
        return resize(image, self.input_size)

    @torch.inference_mode()
    def run(self, views: list[torch.Tensor], product: str, manual: Manual | None) -> list[PartOutput]:
        """Scores: ``defect_head`` (the manual-free defect head's P(defect)) always, and with a
        manual ``classifier`` (1 - P(ok) over the manual's class descriptions)."""
        batch = torch.stack(views)
        # uint8 crosses to the GPU (a quarter of float32's bytes); the float work happens there
        x = to_float((batch.pin_memory() if self.cuda else batch).to(self.device, non_blocking=True))
        x = channels_last(normalize(x, self.encoder.mean, self.encoder.std))
        with autocast(self.precision, self.device):
            tokens, pooled = self.encoder(x)
            head = self._defect_head(pooled)
            pooled_np = pooled.float().cpu().numpy()
            if manual is None:
                return [PartOutput({DEFECT_HEAD: float(h)}, pooled=p) for h, p in zip(head, pooled_np, strict=True)]
            text = self.bank.embed(manual).to(self.device)  # [C, Dt], cached per manual version
            B, C = len(batch), text.shape[0]
            mask = torch.ones(B, C, dtype=torch.bool, device=self.device)
            out = self.model(tokens, pooled, text.expand(B, -1, -1), mask)
            probs = torch.softmax(out.class_logits.float() / self.model.class_temperature, -1).cpu().numpy()
            attn = out.attention.float().cpu().numpy() if out.attention is not None else None
        return [
            PartOutput(
                {CLASSIFIER: float(1 - p[0]), DEFECT_HEAD: float(head[i])},
                class_probs=p,
                type_probs=_types(p),
                pooled=pooled_np[i],
                attention=_grid(attn, i, p),
            )
            for i, p in enumerate(probs)
        ]

    def turned_types(
        self, views: list[torch.Tensor], product: str, manual: Manual | None, own: list[np.ndarray | None], n: int
    ) -> list[np.ndarray | None]:
        """Per view, [n, T]: ``own`` (its type probabilities on ``views``) and those on its next
        n - 1 turns and mirrors (``TURNS``). A turned defect is still the same defect; the
        classifier's guess at its type wavers with the view, and the mean of several guesses errs
        less where val says so (pcb: docs/RESULTS.md). Costs n - 1 more passes, so the engine asks
        only for parts it rejects or sends to review. None where a view names no types."""
        if manual is None or not views or n < 2:
            return [None if t is None else t[None] for t in own]
        seen: list[list[np.ndarray | None]] = [[t] for t in own]
        for turn in TURNS[1:n]:  # a pass per turn: one batch of all of them ran slower on a 2-core CPU
            for i, o in enumerate(self.run([turn(v) for v in views], product, manual)):
                seen[i].append(o.type_probs)
        return [None if any(t is None for t in ts) else np.stack(ts) for ts in seen]  # type: ignore[arg-type]

    def _defect_head(self, pooled: torch.Tensor) -> np.ndarray:
        logit = self.model.image_only_defect_logit(pooled).float() / self.model.defect_temperature
        return torch.sigmoid(logit).cpu().numpy()


def _types(p: np.ndarray) -> np.ndarray | None:
    """P(type | defective) from the class probabilities (``ok`` first)."""
    rest = p[1:]
    return rest / rest.sum() if len(rest) and rest.sum() > 0 else None


def _grid(attn: np.ndarray | None, i: int, p: np.ndarray) -> np.ndarray | None:
    """The attention of the most likely defect class as a square grid (None when not square)."""
    if attn is None:
        return None
    side = round(attn.shape[-1] ** 0.5)
    if side * side != attn.shape[-1]:
        return None
    cls = int(np.argmax(p[1:]) + 1) if len(p) > 1 else 0
    return attn[i, cls].reshape(side, side)
