"""A small real training run on real defect images (only where ../shared/data exists)."""

from inspector.settings import Settings
from inspector.training import train_model


def test_steel_strip_few_shot_run_beats_chance_widely(shared_data, tmp_path):
    s = Settings(home=tmp_path)
    s.train.views, s.train.epochs = 1, 30
    card = train_model(s, [shared_data], None, products=["steel-strip"], shots=20, progress=False)
    m = card.metrics["test"]["steel-strip"]
    assert m["n"] == 270
    assert m["defect_type_macro_f1"] > 0.75  # six defect types: chance is 0.17
    assert card.data["train_used"] == 120
