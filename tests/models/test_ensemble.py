"""Classifier heads from several seeds, averaged, saved and loaded as one classifier."""

import pytest
import torch

from models import ClassifierEnsemble, CrossModalClassifier, FusionConfig, build_classifier
from models.card import ClassifierSpec
from models.export import load_classifier, save_checkpoint
from tests.models.test_fusion import batch

CFG = FusionConfig(fusion="cross_attention", image_dim=32, text_dim=16, hidden_dim=24, heads=4)


def members(n: int) -> list[CrossModalClassifier]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        out.append(CrossModalClassifier(CFG).eval())
    return out


def test_the_ensemble_scores_the_mean_of_its_members_probabilities_and_keeps_padded_classes_out():
    heads = members(3)
    for i, h in enumerate(heads):  # each member at its own temperature
        h.class_temperature.fill_(0.5 + i)
        h.defect_temperature.fill_(2.0 - 0.5 * i)
    ensemble = ClassifierEnsemble.of(heads).eval()
    x = batch()
    outs = [h(*x) for h in heads]
    got = ensemble(*x)
    want = torch.stack(
        [torch.softmax(o.class_logits / h.class_temperature, -1) for o, h in zip(outs, heads, strict=True)]
    )
    torch.testing.assert_close(torch.softmax(got.class_logits, -1), want.mean(0))
    assert torch.isneginf(got.class_logits[1, 3])  # row 1's product has one class fewer
    defect = torch.stack(
        [torch.sigmoid(o.defect_logit / h.defect_temperature) for o, h in zip(outs, heads, strict=True)]
    )
    torch.testing.assert_close(torch.sigmoid(got.defect_logit), defect.mean(0))
    torch.testing.assert_close(got.attention, torch.stack([o.attention for o in outs]).mean(0))
    pooled = x[1]
    alone = torch.stack([torch.sigmoid(h.image_only_defect_logit(pooled) / h.defect_temperature) for h in heads])
    torch.testing.assert_close(torch.sigmoid(ensemble.image_only_defect_logit(pooled)), alone.mean(0))
    assert isinstance(build_classifier(CFG), CrossModalClassifier)


def test_an_ensemble_checkpoint_loads_with_its_temperatures_and_scores_the_same(tmp_path):
    ensemble = ClassifierEnsemble.of(members(3)).eval()
    ensemble.class_temperature.fill_(1.7)
    spec = ClassifierSpec(backbone="efficientnet_lite0", input_size=224, fusion=CFG, class_temperature=1.7, members=3)

    class Card:  # save_checkpoint only copies and writes the card
        def model_copy(self, update):
            return self

        def to_json(self):
            return "{}"

    save_checkpoint(tmp_path / "m", Card(), ensemble)
    loaded, extra = load_classifier(tmp_path / "m", spec)
    x = batch()
    assert isinstance(loaded, ClassifierEnsemble) and len(loaded.members) == 3 and extra == {}
    assert float(loaded.class_temperature) == pytest.approx(1.7)
    torch.testing.assert_close(loaded(*x).class_logits, ensemble(*x).class_logits)
