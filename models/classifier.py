"""The cross-modal defect classifier: fusion + heads over image features and manual text.

It works on encoder outputs, so the same module trains on cached frozen features (fast on a
CPU) or behind a trainable image encoder (fine-tuning); see ``FineTuneModel``.
"""

from __future__ import annotations

import torch
from torch import nn

from models.encoders.image import ImageEncoder
from models.fusion import create_fusion
from models.heads import ClassScorer, DefectHead
from models.types import ClassifierOutput, FusionConfig


class CrossModalClassifier(nn.Module):
    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fusion = create_fusion(cfg)
        self.scorer = ClassScorer(self.fusion.out_dim)
        self.defect_head = DefectHead(cfg.image_dim, cfg.text_dim, cfg.hidden_dim, cfg.dropout, cfg.text_dropout)
        # Temperatures fitted on the val split after training (calibration), stored with the weights.
        self.register_buffer("class_temperature", torch.ones(()))
        self.register_buffer("defect_temperature", torch.ones(()))

    def forward(
        self, tokens: torch.Tensor, pooled: torch.Tensor, text: torch.Tensor, mask: torch.Tensor
    ) -> ClassifierOutput:
        """tokens [B, N, Di], pooled [B, Di], text [B, C, Dt], mask [B, C] (True = real class)."""
        fused, attention = self.fusion(tokens, pooled, text)  # [B, C, H], [B, C, N] | None
        class_logits = self.scorer(fused, mask)  # [B, C]
        m = mask.unsqueeze(-1).to(text.dtype)  # [B, C, 1]
        context = (text * m).sum(1) / m.sum(1).clamp(min=1)  # [B, Dt]: the product as its manual describes it
        return ClassifierOutput(class_logits, self.defect_head(pooled, context), attention)

    def image_only_defect_logit(self, pooled: torch.Tensor) -> torch.Tensor:
        """Defect logit [B] without any manual text."""
        return self.defect_head(pooled, None)


class ClassifierEnsemble(nn.Module):
    """Several classifiers trained from different seeds on the same frozen features, their
    probabilities averaged. A small head trained on a few hundred parts ranks the odd part
    differently from seed to seed; the mean smooths that for the cost of a few heads over one
    backbone pass (on the demo's poly cells classifier AUROC +0.02 on val; the station's escape
    did not follow, docs/RESULTS.md)."""

    def __init__(self, cfg: FusionConfig, members: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(CrossModalClassifier(cfg) for _ in range(members))
        self.register_buffer("class_temperature", torch.ones(()))
        self.register_buffer("defect_temperature", torch.ones(()))

    @classmethod
    def of(cls, trained: list[CrossModalClassifier]) -> ClassifierEnsemble:
        ensemble = cls(trained[0].cfg, len(trained))
        for slot, member in zip(ensemble.members, trained, strict=True):
            slot.load_state_dict(member.state_dict())
        return ensemble

    def forward(
        self, tokens: torch.Tensor, pooled: torch.Tensor, text: torch.Tensor, mask: torch.Tensor
    ) -> ClassifierOutput:
        """Logits whose softmax (sigmoid) is the mean of the members' probabilities, each at its
        own temperature: members whose logits differ in scale count alike."""
        outs = [m(tokens, pooled, text, mask) for m in self.members]
        probs = torch.stack(
            [
                torch.softmax(o.class_logits.float() / m.class_temperature, -1)
                for o, m in zip(outs, self.members, strict=True)
            ]
        ).mean(0)
        attention = None if outs[0].attention is None else torch.stack([o.attention for o in outs]).mean(0)
        defect = self._mean_sigmoid([o.defect_logit for o in outs])
        return ClassifierOutput(probs.log(), defect, attention)  # padded classes: p = 0, log = -inf

    def image_only_defect_logit(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._mean_sigmoid([m.image_only_defect_logit(pooled) for m in self.members])

    def _mean_sigmoid(self, logits: list[torch.Tensor]) -> torch.Tensor:
        p = torch.stack(
            [torch.sigmoid(d.float() / m.defect_temperature) for d, m in zip(logits, self.members, strict=True)]
        )
        return torch.logit(p.mean(0), eps=1e-6)


Classifier = CrossModalClassifier | ClassifierEnsemble


def build_classifier(cfg: FusionConfig, members: int = 1) -> Classifier:
    return CrossModalClassifier(cfg) if members == 1 else ClassifierEnsemble(cfg, members)


class FineTuneModel(nn.Module):
    """Image encoder + classifier trained end to end (the encoder's last stages unfrozen)."""

    def __init__(self, encoder: ImageEncoder, classifier: CrossModalClassifier) -> None:
        super().__init__()
        self.encoder, self.classifier = encoder, classifier

    def forward(self, images: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        tokens, pooled = self.encoder(images)
        return self.classifier(tokens, pooled, text, mask)

    def forward_prefixed(self, prefix: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> ClassifierOutput:
        """The same from the frozen stages' cached output (``ImageEncoder.forward_prefix``)."""
        tokens, pooled = self.encoder.forward_suffix(prefix, self.encoder.trainable_stages)
        return self.classifier(tokens, pooled, text, mask)
