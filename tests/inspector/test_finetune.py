"""Fine-tune mode end to end on a tiny backbone: the encoder learns, and the checkpoint carries it."""

import pytest
import torch

from inspector.engine import Engine
from inspector.retrain import _settings_like
from inspector.settings import Settings
from inspector.training import train_model
from models import create_image_encoder


@pytest.mark.parametrize("views", [2, 0], ids=["cached-frozen-stages", "every-image-anew"])
def test_finetune_updates_last_stages_and_engine_loads_them(synthetic_root, tmp_path, views):
    s = Settings(home=tmp_path)
    s.model.backbone, s.model.hidden_dim = "tiny_test", 32
    s.train.mode, s.train.epochs, s.train.trainable_stages, s.train.batch_size = "finetune", 2, 1, 16
    s.train.finetune_views = views
    s.anomaly.enabled = False  # the classifier's fine-tuning is under test
    out = tmp_path / "ft"
    torch.manual_seed(0)
    card = train_model(s, [synthetic_root], out, progress=False)
    assert card.classifier.mode == "finetune" and card.classifier.trainable_stages == 1
    # a retraining challenger learns the same stages as its champion, whatever the settings say
    assert _settings_like(Settings(home=tmp_path), card).train.trainable_stages == 1
    # the frozen stages' maps are kept for the next run (seeds, retraining) only when cached
    assert any((s.cache_dir / "features").rglob("*.pt")) == (views > 0)
    assert card.metrics["test"]["washer"]["n"] > 0

    engine = Engine(out, "cpu")
    torch.manual_seed(0)
    fresh = create_image_encoder("tiny_test")  # same init seed as training used
    trained, untouched = engine.parts["classifier"].encoder.backbone, fresh.backbone
    assert not torch.equal(next(trained.blocks[-1].parameters()), next(untouched.blocks[-1].parameters()))
    torch.testing.assert_close(trained.conv_stem.weight, untouched.conv_stem.weight)  # frozen stem unchanged
    rgb = torch.randint(0, 255, (96, 96, 3), dtype=torch.uint8).numpy()
    assert engine.inspect_arrays("washer", [rgb])[0].verdict in ("accept", "review", "reject")
