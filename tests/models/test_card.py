"""The model card is typed and versioned: older formats load, unknown ones fail in one line."""

from __future__ import annotations

import json

import pytest

from models.card import CARD_FORMAT, CardError, load_card, parse_card

FORMAT_1 = {
    "format": 1,
    "created_at": "2026-11-20T10:00:00+00:00",
    "backbone": "efficientnet_lite0",
    "input_size": 224,
    "text_encoder": "minilm_l6",
    "text_source": "manual",
    "mode": "frozen",
    "trainable_stages": 0,
    "fusion_config": {
        "fusion": "cross_attention", "image_dim": 1280, "text_dim": 384, "hidden_dim": 256, "heads": 4, "rank": 8,
        "dropout": 0.1, "text_dropout": 0.3, "image_only": False,
    },
    "calibration": {
        "class_temperature": 1.3, "defect_temperature": 0.9,
        "fallback": {"warn": 0.3, "reject": 0.5, "target_frr": 0.0, "n_good": 0, "guaranteed": False},
        "image_only_fallback": {"warn": 0.3, "reject": 0.5, "target_frr": 0.0, "n_good": 0, "guaranteed": False},
    },
    "products": {
        "washer": {
            "name": "Washer", "classes": ["ok", "scratch"], "manual_sha256": "ab" * 32, "manual_version": "1",
            "manual": "", "calibrated_on": "120 good parts of val",
            "thresholds": {"warn": 0.2, "reject": 0.6, "target_frr": 0.01, "n_good": 120, "guaranteed": True},
            "image_only": {"warn": 0.25, "reject": 0.7, "target_frr": 0.01, "n_good": 120, "guaranteed": True},
        }
    },
    "verdict": {"target_frr": 0.01, "warn_frr": 0.05},
    "data": {"roots": ["/data"]},
    "train": {},
    "metrics": {},
    "versions": {"torch": "2.14.1"},
}  # fmt: skip


def test_format_1_card_loads_as_a_classifier_only_model(tmp_path):
    (tmp_path / "card.json").write_text(json.dumps(FORMAT_1))
    card = load_card(tmp_path / "card.json")
    assert card.format == CARD_FORMAT and card.anomaly_backbones == []
    assert card.classifier.backbone == "efficientnet_lite0" and card.classifier.class_temperature == 1.3
    washer = card.products["washer"]
    assert list(washer.decision.parts) == ["classifier"] and washer.decision.thresholds.reject == 0.6
    assert washer.image_only.thresholds.reject == 0.7 and washer.decision.parts["classifier"].spread == 1.0


def test_older_cards_load_as_they_scored_and_a_newer_format_is_refused(tmp_path):
    two = load_card(_write(tmp_path, FORMAT_1)).model_dump()
    for product in two["products"].values():  # a format 2 card knew no pooling
        del product["decision"]["pooling"], product["image_only"]["pooling"]
    del two["fallback"]["pooling"]
    view = {"backbone": "efficientnet_lite0", "resize": "scale", "size": 698, "scale": 1.0}
    two["format"], two["products"]["washer"]["anomaly"] = 2, {"view": view, "bank_patches": 9, "bank_images": 5}
    card = parse_card(two)
    assert card.format == CARD_FORMAT == 13 and card.products["washer"].anomaly.view.standardise is False
    three = {**two, "format": 3}
    three["products"]["washer"]["anomaly"]["view"]["standardise"] = True
    assert parse_card(three).products["washer"].anomaly.view.label == "efficientnet_lite0@scale1max698+std"
    assert parse_card(three).products["washer"].decision.pooling == "max"  # what format 3 always did
    four = {**parse_card(three).model_dump(), "format": 4}
    four["products"]["washer"]["decision"]["pooling"] = "mean"
    assert parse_card(four).products["washer"].decision.pooling == "mean"
    assert parse_card(four).products["washer"].decision.typing == "classifier"  # one part typed, as always
    five = parse_card(four).model_dump()
    five["products"]["washer"]["decision"]["typing"] = "both"
    assert parse_card(five).products["washer"].decision.typing == "both"
    five |= {"format": 5}
    five["products"]["washer"]["anomaly"]["segmentation"] = {"masked": 30, "good": 40, "steps": 600}
    seg = parse_card(five).products["washer"].anomaly
    assert seg.segmentation.taught_by == "masks" and seg.map_from_segmentation  # format 5 heads all had masks
    six = parse_card(five).model_dump()
    six["products"]["washer"]["anomaly"]["segmentation"]["taught_by"] = "labels"
    assert not parse_card(six).products["washer"].anomaly.map_from_segmentation
    for product in six["products"].values():  # a format 6 card named no threshold basis
        del product["decision"]["basis"], product["image_only"]["basis"]
    del six["fallback"]["basis"]
    six["format"] = 6
    assert parse_card(six).products["washer"].decision.basis is None
    seven = parse_card(six).model_dump()
    seven["products"]["washer"]["decision"]["basis"] = {
        "set_by": [{"image": "ok/tile177_exp1.jpg", "part": "tile177", "score": 2.5}],
        "reject_without": 1.5,
    }
    basis = parse_card(seven).products["washer"].decision.basis
    assert basis.set_by[0].part == "tile177" and basis.reject_without == 1.5 and basis.val_escape is None
    head = {k: v for k, v in seven["classifier"].items() if k != "members"}
    assert parse_card({**seven, "format": 7, "classifier": head}).classifier.members == 1  # one head then
    eight = {**parse_card(seven).model_dump(), "format": 8}
    del eight["classifier"]["precision"]
    assert parse_card(eight).classifier.precision == "float32"  # trained on the CPU, scored in float32
    on_gpu = {**eight, "train": {"device": "cuda:0"}}
    assert parse_card(on_gpu).classifier.precision == "bfloat16"  # CUDA scored it under bf16 autocast
    assert parse_card({**eight, "classifier": None}).classifier is None
    nine = {**parse_card(eight).model_dump(), "format": 9}
    for product in nine["products"].values():  # a format 9 card typed each part from the view as it is
        del product["decision"]["type_views"], product["image_only"]["type_views"]
    del nine["fallback"]["type_views"]
    assert parse_card(nine).products["washer"].decision.type_views == 1
    ten = {**nine, "format": 10}  # format 10 said whether types were averaged over the view's three mirrors
    ten["products"] = {
        name: {**p, "decision": {**p["decision"], "mirrored_types": True}} for name, p in nine["products"].items()
    }
    upgraded = parse_card(ten).products["washer"]
    assert (upgraded.decision.type_views, upgraded.image_only.type_views) == (4, 1)
    eleven = {**parse_card(ten).model_dump(), "format": 11}
    del eleven["products"]["washer"]["anomaly"]["view"]["precision"]
    assert parse_card(eleven).products["washer"].anomaly.view.precision == "float32"  # as every bank was built
    twelve = {**parse_card(eleven).model_dump(), "format": 12}
    for d in (twelve["products"]["washer"]["decision"], twelve["products"]["washer"]["image_only"], twelve["fallback"]):
        del d["thresholds"]["n_parts"]
    promise = parse_card(twelve).products["washer"].decision.thresholds
    assert promise.n_parts is None and promise.parts == promise.n_good  # format 12 counted images
    with pytest.raises(CardError, match="card format 14 is newer"):
        parse_card({**seven, "format": 14})


def _write(folder, data) -> object:
    (folder / "card.json").write_text(json.dumps(data))
    return folder / "card.json"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 99}, "card format 99 is newer than this inspector reads"),
        ({"format": None}, "not a model card"),
        ({"products": {"washer": {"classes": ["ok"]}}}, "format 1 card is missing"),
    ],
)
def test_unusable_cards_fail_in_one_line_naming_the_file(tmp_path, change, message):
    path = tmp_path / "card.json"
    path.write_text(json.dumps({**FORMAT_1, **change}))
    with pytest.raises(CardError) as err:
        load_card(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_current_card_with_a_wrong_field_names_it(tmp_path):
    path = tmp_path / "card.json"
    path.write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        load_card(path)
    bad = {"format": 2, "created_at": "x", "products": {}, "fallback": {"parts": {}, "thresholds": "high"}}
    path.write_text(json.dumps(bad))
    with pytest.raises(CardError, match=r"fallback\.thresholds"):
        load_card(path)
