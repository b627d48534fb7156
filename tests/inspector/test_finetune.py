"""Fine-tune mode end to end on a tiny backbone: the encoder learns, and the checkpoint carries it."""

import torch

from inspector.engine import Engine
from inspector.settings import Settings
from inspector.training import train_model
from models import create_image_encoder


def test_finetune_updates_last_stages_and_engine_loads_them(synthetic_root, tmp_path):
    s = Settings(home=tmp_path)
    s.model.backbone, s.model.hidden_dim = "tiny_test", 32
    s.train.mode, s.train.epochs, s.train.trainable_stages, s.train.batch_size = "finetune", 2, 1, 16
    s.anomaly.enabled = False  # the classifier's fine-tuning is under test
    out = tmp_path / "ft"
    torch.manual_seed(0)
    card = train_model(s, [synthetic_root], out, progress=False)
    assert card.classifier.mode == "finetune" and card.classifier.trainable_stages == 1
    assert card.metrics["test"]["washer"]["n"] > 0

    engine = Engine(out, "cpu")
    torch.manual_seed(0)
    fresh = create_image_encoder("tiny_test")  # same init seed as training used
    trained, untouched = engine.parts["classifier"].encoder.backbone, fresh.backbone
    assert not torch.equal(next(trained.blocks[-1].parameters()), next(untouched.blocks[-1].parameters()))
    torch.testing.assert_close(trained.conv_stem.weight, untouched.conv_stem.weight)  # frozen stem unchanged
    rgb = torch.randint(0, 255, (96, 96, 3), dtype=torch.uint8).numpy()
    assert engine.inspect_arrays("washer", [rgb])[0].verdict in ("accept", "review", "reject")
