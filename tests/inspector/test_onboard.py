"""Onboarding a product by its manual and good images: bank and threshold in seconds, the
station's champion switches, and a defect no image ever showed is rejected. Bad input is
refused naming the file or product, and nothing is half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inspector.cli import main
from inspector.engine import Engine
from inspector.store.monitoring import champion
from inspector.store.session import make_engine, session_factory
from tests.helpers.synthetic import MANUAL, make_image


def make_plate(folder: Path, good: int = 14, size: int = 96, seed: int = 5) -> Path:
    """A product the model never saw: plates brushed the other way; good images only."""
    rng = np.random.default_rng(seed)
    (folder / "images" / "ok").mkdir(parents=True, exist_ok=True)
    for i in range(good):
        Image.fromarray(make_image("ok_vertical", rng, size)).save(folder / "images" / "ok" / f"ok_{i:03d}.png")
    (folder / "manual.md").write_text(MANUAL.format(product="plate"))
    return folder


def onboard(folder: Path, base: Path, home: Path, *extra: str) -> int:
    return main(["onboard", "--product", str(folder), "--model", str(base), "--home", str(home), "--quiet", *extra])


def test_onboarded_product_is_inspected_and_an_unseen_defect_rejected(trained_model, tmp_path, capsys):
    home = tmp_path / "home"
    assert onboard(make_plate(tmp_path / "plate"), trained_model, home) == 0
    out = capsys.readouterr().out
    # every good image is in the bank; each calibrates through a bank built without its fold
    assert "plate: bank from 14 good images, the threshold calibrated on all 14" in out
    assert "promoted to champion" in out
    db = make_engine(f"sqlite:///{home / 'inspector.db'}")
    with session_factory(db)() as s:
        model_dir = Path(champion(s).artifact_path)
    db.dispose()
    assert model_dir.parent == home / "models" and model_dir.name.startswith("onboard-plate-")

    engine = Engine(model_dir, "cpu")
    rng = np.random.default_rng(99)  # parts the bank never saw
    rgb = [np.repeat(make_image(k, rng)[..., None], 3, 2) for k in ["ok_vertical"] * 6 + ["scratch", "spot"] * 3]
    verdicts = engine.inspect_arrays("plate", rgb)
    assert sum(v.verdict == "accept" for v in verdicts[:6]) >= 5
    assert all(v.verdict == "reject" for v in verdicts[6:])  # no defect image was ever given for plates
    assert verdicts[6].anomaly_map is not None and verdicts[6].anomaly_map.max() > 1  # the map shows where
    assert engine.inspect_arrays("washer", rgb[:1])[0].product == "washer"  # the model's products still served


def test_too_few_good_images_name_the_product_and_write_nothing(trained_model, tmp_path, capsys):
    home = tmp_path / "home"
    assert onboard(make_plate(tmp_path / "plate", good=6), trained_model, home) == 2
    assert "plate: 6 good image(s)" in capsys.readouterr().err
    assert not (home / "models").exists() or not any((home / "models").iterdir())


@pytest.mark.parametrize("trouble", ["huge", "corrupt"])
def test_a_bad_good_image_is_named_and_nothing_is_half_written(trained_model, tmp_path, capsys, trouble):
    folder = make_plate(tmp_path / "plate")
    bad = folder / "images" / "ok" / "ok_007.png"
    if trouble == "huge":  # 50x the area of the others: another part or camera
        Image.fromarray(np.full((680, 680), 128, np.uint8)).save(bad)
    else:
        bad.write_bytes(bad.read_bytes()[:200])  # truncated in transit
    home = tmp_path / "home"
    assert onboard(folder, trained_model, home) == 2
    err = capsys.readouterr().err
    assert "ok_007.png" in err and "Traceback" not in err
    models = home / "models"
    assert not models.exists() or not any(models.iterdir())


def test_mixed_sizes_keep_their_shape(trained_model, tmp_path):
    folder = make_plate(tmp_path / "plate", good=8, size=96)
    make_plate(folder, good=8, size=120, seed=6)  # overwrites half with larger crops: mixed sizes
    for i in range(8, 14):
        Image.fromarray(make_image("ok_vertical", np.random.default_rng(i), 80)).save(
            folder / "images" / "ok" / f"ok_{i:03d}.png"
        )
    out = tmp_path / "onboarded"
    assert onboard(folder, trained_model, tmp_path / "home", "--out", str(out), "--no-promote") == 0
    view = Engine(out, "cpu").card.products["plate"].anomaly.view
    assert view.resize == "scale"  # crops of different sizes are not squeezed into one square
