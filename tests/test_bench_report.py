"""The accuracy report: no target claimed on a split its caveat says flatters every model, the
basis of each reject threshold named, and a fine-tuning spec read or refused at the door."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))

import accuracy


def _row(lines: list[str], product: str, metric: str) -> str:
    return next(x for x in lines if x.startswith(f"| {product} | {metric} |"))


def test_a_caveated_product_claims_no_target_and_the_others_still_do():
    station = {"escape_rate": [0.001, 0.0, 3], "false_reject_rate": [0.01, 0.0, 3], "frr_bound": [0.027, 0.0, 3]}
    r = {"main": {"pcb": {"station": station}, "glass-bottle": {"station": station}}, "caveats": {"pcb": "flattered"}}
    lines = accuracy.assessment(r)
    assert _row(lines, "pcb", "escape_rate").endswith("| not claimed (its caveat) |")
    assert _row(lines, "pcb", "FRR within its bound").endswith("| not claimed (its caveat) |")
    assert _row(lines, "glass-bottle", "escape_rate").endswith("| yes |")


def test_the_report_says_what_a_reject_threshold_stands_on():
    setter = {"image": "/d/ok/a.jpg", "part": "tile177", "score": 2.3}
    basis = {"set_by": [setter, {**setter, "image": "/d/ok/b.jpg"}], "reject_without": 1.5,
             "val_escape": 0.5, "val_escape_without": 0.38}  # fmt: skip
    decision = {"typing": "anomaly", "basis": basis}
    metrics = {"escape_rate": 0.4, "false_reject_rate": 0.0, "frr_bound": 0.028, "parts": "anomaly", "image_only": {}}
    runs = [{"test": {"tile": metrics}, "products": {"tile": {"decision": decision}}}]
    table = accuracy.summary(runs)
    assert table["tile"]["basis"] == basis
    text = accuracy._basis(table["tile"]["basis"])  # the line each product's section opens with
    assert "set by 2 good calibration image(s) of tile177; were they defective, val would let 38 %" in text


def test_a_fine_tuning_names_its_size_epochs_and_stages_and_a_bad_one_is_refused():
    assert accuracy.product_size("pcb:128") == ("pcb", 128, None, None)
    assert accuracy.product_size("magnetic-tile:320:12") == ("magnetic-tile", 320, 12, None)
    assert accuracy.product_size("pcb:224::4") == ("pcb", 224, None, 4)
    for bad in ("pcb", "pcb:big", "pcb:224:1:2:3", ":224", "pcb:0", "pcb:224:0", "pcb:224::0", "pcb::12"):
        with pytest.raises(argparse.ArgumentTypeError):
            accuracy.product_size(bad)


def test_the_report_names_typing_over_turns_per_seed_and_what_the_view_alone_named():
    plain = {"escape_rate": 0.02, "defect_type_macro_f1": 0.95, "parts": "classifier", "image_only": {}}
    turned = {**plain, "defect_type_macro_f1": 0.97, "defect_type_macro_f1_view_alone": 0.96}
    runs = [
        {"test": {"pcb": m}, "products": {"pcb": {"decision": {"typing": "classifier", "type_views": views}}}}
        for m, views in ((turned, 8), (plain, 1))
    ]
    table = accuracy.summary(runs)["pcb"]
    assert table["typing"] == "classifier over turns and mirrors / classifier"  # val chose per seed
    older = {"typing": "both", "mirrored_types": True}  # a format-10 card in an earlier results.json
    assert accuracy._typing(older) == "both over mirrors"
    assert accuracy._view_alone(table["station"]) == " (type-F1 from the view alone on those seeds: 0.960)"
    assert accuracy._view_alone(accuracy.summary(runs[1:])["pcb"]["station"]) == ""


def test_a_fine_tuning_run_elsewhere_keeps_its_product_targets_and_says_where_it_ran():
    station = {"escape_rate": [0.037, 0.029, 3], "defect_type_macro_f1": [0.968, 0.001, 3],
               "false_reject_rate": [0.011, 0.006, 3], "frr_bound": [0.025, 0.0, 3]}  # fmt: skip
    cpu = {"table": {"station": station}, "input_size": 128, "trainable_stages": 2}
    gpu = {**cpu, "product": "pcb", "device": "a lent GPU", "input_size": 224, "trainable_stages": 4}
    lines = accuracy.assessment({"finetune": {"pcb": cpu, "pcb on a GPU": gpu}})
    assert _row(lines, "pcb (fine-tuned at 128 px)", "escape_rate").endswith("| yes |")
    named = "pcb (fine-tuned at 224 px, 4 stages, a lent GPU)"
    assert _row(lines, named, "escape_rate").endswith("| yes |")
    assert _row(lines, named, "defect_type_macro_f1").endswith("| **no** |")  # pcb's 0.97 target
    assert _row(lines, named, "FRR within its bound").endswith("| yes |")
