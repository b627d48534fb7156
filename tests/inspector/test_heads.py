"""Several classifier heads on one frozen backbone: trained from different seeds, saved as one
classifier, served by the engine with one backbone pass."""

from __future__ import annotations

import torch

from inspector.engine import Engine
from inspector.settings import Settings
from inspector.training import train_model
from models import ClassifierEnsemble


def test_heads_from_different_seeds_train_save_and_serve_as_one_classifier(synthetic_root, home, tmp_path):
    s = Settings(home=home)  # the session's feature cache
    s.train.epochs, s.train.views, s.train.heads = 3, 1, 2
    s.anomaly.enabled = False
    out = tmp_path / "model"
    card = train_model(s, [synthetic_root], out, progress=False)
    assert card.classifier.members == 2 and card.train["heads"] == 2 and len(card.train["heads_best_epochs"]) == 2

    engine = Engine(out, device="cpu")
    model = engine.parts["classifier"].model
    assert isinstance(model, ClassifierEnsemble) and len(model.members) == 2
    a, b = (m.scorer.score.weight for m in model.members)
    assert not torch.equal(a, b)  # two seeds, two heads
    good = sorted((synthetic_root / "washer" / "images" / "ok").glob("*.png"))[:2]
    verdicts = engine.inspect_files("washer", good)
    assert len(verdicts) == 2 and all(0 <= v.classifier_score <= 1 for v in verdicts)
