"""End to end through the CLI: train -> eval -> inspect on generated images, plus bad input."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from inspector.cli import main
from inspector.dataset import load_dataset
from models.card import CARD_FORMAT


def inspect_washer(home, model, *args) -> int:
    return main(["inspect", "--product", "washer", "--home", str(home), "--model", str(model), *map(str, args)])


def test_help_explains_every_command():
    out = subprocess.run([sys.executable, "-m", "inspector", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for option in ("--data", "--fusion", "--text-source", "--mode", "--shots", "--target-frr", "--views"):
        assert option in out.stdout


def test_train_beats_chance_by_a_wide_margin(trained_model):
    card = json.loads((trained_model / "card.json").read_text())
    test = card["metrics"]["test"]["washer"]
    assert test["auroc"] > 0.9 and test["escape_rate"] < 0.3  # chance: 0.5 and 0.99
    assert test["defect_type_macro_f1"] > 0.8  # chance: 0.5
    assert card["format"] == CARD_FORMAT and card["products"]["washer"]["classes"] == ["ok", "scratch", "spot"]
    classifier = card["classifier"]
    assert classifier["backbone"] == "efficientnet_lite0" and classifier["fusion"]["fusion"] == "cross_attention"
    assert card["anomaly_backbones"] == ["efficientnet_lite0"] and card["products"]["washer"]["anomaly"]["bank_patches"]
    assert len(card["products"]["washer"]["manual_sha256"]) == 64 and card["data"]["fingerprint"]
    decision = card["products"]["washer"]["decision"]
    assert decision["basis"]["set_by"]  # the calibration parts its threshold stands on, named
    assert "classifier over mirrors" in decision["selected_on"]  # val weighed types over mirrors


def test_eval_writes_json(trained_model, synthetic_root, home, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--data",
                str(synthetic_root),
                "--home",
                str(home),
                "--model",
                str(trained_model),
                "--json",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert set(result) == {"model", "split", "data", "bad_rows", "metrics"}  # the JSON a script reads
    assert result["split"] == "test" and result["metrics"]["washer"]["n"] > 0
    printed = capsys.readouterr().out
    assert "escape" in printed and "washer: reject >" in printed and "is set by" in printed


def test_eval_of_a_decision_typed_over_turns_reports_both_typings(trained_model, synthetic_root, home, tmp_path):
    """The split is scored over turns as the station types it, beside what the view alone names."""
    import shutil

    f1 = {}
    for name, views in (("plain", 1), ("turned", 8)):
        shutil.copytree(trained_model, tmp_path / name)
        card = json.loads((tmp_path / name / "card.json").read_text())
        card["products"]["washer"]["decision"] |= {"typing": "classifier", "type_views": views}
        (tmp_path / name / "card.json").write_text(json.dumps(card))
        out = tmp_path / f"{name}.json"
        args = ["eval", "--data", synthetic_root, "--home", home, "--model", tmp_path / name, "--json", out, "--quiet"]
        assert main(list(map(str, args))) == 0
        f1[name] = json.loads(out.read_text())["metrics"]["washer"]
    assert "defect_type_macro_f1_view_alone" not in f1["plain"]
    assert f1["turned"]["defect_type_macro_f1_view_alone"] == f1["plain"]["defect_type_macro_f1"]
    assert f1["turned"]["escape_rate"] == f1["plain"]["escape_rate"]  # typing never moves the verdict


def test_inspect_names_the_defect_in_the_manuals_words(trained_model, synthetic_root, home, capsys):
    test = [s for s in load_dataset(synthetic_root).split("test") if s.defect_type == "scratch"]
    assert inspect_washer(home, trained_model, "--json", *[str(s.path) for s in test]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    named = [r for r in rows if r["defect_type"] == "scratch"]
    assert len(named) >= 0.7 * len(rows)
    assert all(r["verdict"] in ("review", "reject") for r in named)
    assert "long thin dark line" in named[0]["reason"]  # quoted from the manual


def test_inspect_reports_bad_images_and_goes_on(trained_model, synthetic_root, home, tmp_path, capsys):
    good = next(s.path for s in load_dataset(synthetic_root).split("test"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((50, 50, 4), 200, np.uint8), "RGBA").save(rgba)
    code = inspect_washer(home, trained_model, str(broken), str(good), str(rgba))
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[0].startswith("ERROR") and "broken.png" in out[0]
    assert out[1].split()[0] in ("ACCEPT", "WARN", "REJECT") and out[2].split()[0] in ("ACCEPT", "WARN", "REJECT")


def test_unknown_product_is_one_line_not_a_traceback(trained_model, synthetic_root, home, capsys):
    good = next(s.path for s in load_dataset(synthetic_root).split("test"))
    code = main(["inspect", "--product", "gear", "--home", str(home), "--model", str(trained_model), str(good)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("inspector: error: unknown product 'gear'") and "Traceback" not in err


def test_missing_model_and_bad_manual(trained_model, synthetic_root, home, tmp_path, capsys):
    good = next(s.path for s in load_dataset(synthetic_root).split("test"))
    assert main(["inspect", "--product", "washer", "--home", str(tmp_path), str(good)]) == 2
    assert "not a model checkpoint" in capsys.readouterr().err
    bad = tmp_path / "manual.md"
    bad.write_text("# Washer\n## Good part\nfine\n")
    assert inspect_washer(home, trained_model, "--manual", str(bad), str(good)) == 2
    assert "no defect sections" in capsys.readouterr().err


def _train_with_env(monkeypatch, name: str, value: str, root, home) -> int:
    """``inspector train`` with one environment variable set, settings read afresh."""
    from inspector.settings import get_settings

    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return main(["train", "--data", str(root), "--home", str(home)])
    finally:
        get_settings.cache_clear()


def test_broken_config_is_one_line(monkeypatch, synthetic_root, tmp_path, capsys):
    assert _train_with_env(monkeypatch, "INSPECTOR_TRAIN__EPOCHS", "many", synthetic_root, tmp_path) == 2
    assert "epochs" in capsys.readouterr().err


def test_a_setting_that_is_not_json_is_one_line(monkeypatch, synthetic_root, tmp_path, capsys):
    name = "INSPECTOR_VERDICT__TARGET_FRR_BY_PRODUCT"
    assert _train_with_env(monkeypatch, name, "magnetic-tile=0.03", synthetic_root, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("inspector: error:") and "verdict" in err and "Traceback" not in err
