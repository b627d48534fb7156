"""A product with defect masks learns to segment its defects: the stored map is the head's
P(defect) per region and peaks on the defect, the score joins the decision's candidates, the
head is saved with the model and learnt on train parts only. A product without masks but with
enough defect images gets the head taught by their labels: it scores, the map stays the bank's."""

from __future__ import annotations

import numpy as np
import pytest

from inspector import segmentation_fit, selection, training
from inspector.dataset import CALIBRATION
from inspector.engine import Engine
from inspector.settings import Settings
from models.card import load_card
from tests.helpers.synthetic import make_image_and_mask, make_masked_product, make_product


@pytest.fixture(scope="module")
def segmented(tmp_path_factory, home):
    folder = make_masked_product(tmp_path_factory.mktemp("masked"), "washer", per_class=30)
    (folder / "masks" / "spot" / "spot_000.png").write_bytes(b"not a png")  # a broken mask costs one example
    s = Settings(home=home)
    s.train.epochs, s.train.views = 3, 1
    s.anomaly.segmentation_min_masks, s.anomaly.segmentation_steps = 5, 150
    s.train.selection_folds = 2  # the choice on out-of-fold train defects
    seen: list[set] = []
    folds: list[set] = []  # the train parts each out-of-fold head learnt from
    real = training.fit_segmentation

    def spy(build, ds, *args, **kwargs):
        seen.append({x.path for x in ds.split(CALIBRATION)})
        return real(build, ds, *args, **kwargs)

    def fold_spy(build, ds, *args, **kwargs):
        folds.append({x.path for x in ds.split("train")})
        return real(build, ds, *args, **kwargs)

    training.fit_segmentation, selection.fit_segmentation = spy, fold_spy
    try:
        out = tmp_path_factory.mktemp("model")
        card = training.train_model(s, [folder], out, progress=False)
    finally:
        training.fit_segmentation = selection.fit_segmentation = real
    return card, out, seen, folds


def test_the_head_segments_the_defects_and_is_saved_with_the_model(segmented):
    card, out, *_ = segmented
    spec = card.products["washer"].anomaly
    assert spec.segmentation is not None and spec.segmentation.masked == 2 * 18 - 1  # the train defects, less one
    assert 0 < spec.map_reference < 1  # the map is a probability; 1.0 on the heatmap rejects on its own
    test = card.metrics["test"]["washer"]
    assert "segmentation" in test["methods"]  # measured beside the other parts, and (set so) a candidate to decide
    assert "segmentation" in card.products["washer"].decision.selected_on
    assert test["pixel_auroc"] > 0.9

    engine = Engine(out, "cpu")  # a checkpoint that holds the head
    rng = np.random.default_rng(123)
    image, mask = make_image_and_mask("scratch", rng)
    good, _ = make_image_and_mask("ok", rng)
    scratch, ok = engine.inspect_arrays("washer", [np.repeat(x[..., None], 3, 2) for x in (image, good)])
    amap = scratch.anomaly_map
    assert amap is not None and amap.max() > ok.anomaly_map.max()
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    sy, sx = mask.shape[0] / amap.shape[0], mask.shape[1] / amap.shape[1]
    near = mask[max(0, int((y - 1) * sy)) : int((y + 2) * sy), max(0, int((x - 1) * sx)) : int((x + 2) * sx)]
    assert near.any()  # the map's peak lies on the scratch


def test_the_head_learns_from_train_parts_only(segmented):
    """The calibration parts set the thresholds on its score: it must not have learnt them."""
    card, _, seen, _ = segmented
    (calibration,) = seen
    assert calibration  # good train parts were held out for calibration ...
    assert card.products["washer"].anomaly.segmentation.good == 18 - len(calibration)  # ... and it saw the rest


def test_the_choice_reads_train_defects_scored_by_heads_that_never_saw_them(segmented):
    card, _, _, folds = segmented
    assert len(folds) == 2  # train.selection_folds: one head per fold
    train_defects = {p for p in set.union(*folds) if "ok" not in p.parts}
    for learnt in folds:  # each fold's head misses the defects it scores
        assert 0 < len(train_defects - learnt) < len(train_defects)
    assert set.intersection(*folds) & train_defects == set()  # every defect is held out once
    assert "out-of-fold train defects" in card.products["washer"].decision.selected_on


def test_a_product_without_masks_or_enough_defects_has_no_head_and_keeps_its_combined_row(trained_model):
    card = load_card(trained_model / "card.json")
    assert "segmentation" not in card.products["washer"].decision.selected_on  # no head, no such score ...
    assert "out-of-fold" not in card.products["washer"].decision.selected_on  # ... and by default val alone chooses
    assert card.products["washer"].anomaly.segmentation is None
    methods = card.metrics["test"]["washer"]["methods"]
    assert "segmentation" not in methods and {"classifier", "anomaly", "combined"} <= set(methods)


def test_a_product_without_masks_learns_a_defect_score_from_its_labels(tmp_path, home, monkeypatch):
    folder = make_product(tmp_path / "data", "washer", per_class=30)  # no masks, no manifest
    s = Settings(home=home)
    s.model.classifier = False  # the anomaly branch alone: the head is what is tested, and fast
    # the product has more defect images than the head learns from (pcb: 2,100 of at most 600)
    monkeypatch.setattr(segmentation_fit, "MAX_LABELLED", 24)
    s.anomaly.label_head_min_defects, s.anomaly.label_head_steps = 30, 80
    out = tmp_path / "model"
    card = training.train_model(s, [folder], out, progress=False)
    spec = card.products["washer"].anomaly
    assert spec.segmentation is not None and spec.segmentation.taught_by == "labels"
    assert not spec.map_from_segmentation
    test = card.metrics["test"]["washer"]
    assert test["methods"]["segmentation"]["auroc"] > 0.9  # a scratch or a spot scores above a clean washer
    assert "segmentation" in card.products["washer"].decision.selected_on
    assert load_card(out / "card.json").products["washer"].anomaly.segmentation.taught_by == "labels"

    engine = Engine(out, "cpu")
    rng = np.random.default_rng(7)
    images = [np.repeat(make_image_and_mask(kind, rng)[0][..., None], 3, 2) for kind in ("scratch", "ok")]
    with_head = engine.inspect_arrays("washer", images)
    assert engine.parts["anomaly"].seg_heads.pop("washer").locates is False
    without = engine.inspect_arrays("washer", images)
    for a, b in zip(with_head, without, strict=True):  # it never learnt where: the map is the bank's
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, rtol=1e-6)
