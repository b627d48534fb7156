"""Candidate anomaly views are parsed from the product's image sizes, a candidate that feeds
the extractor nearly the same pixels as an earlier one is not built twice, and each is judged on
parts its bank never saw: val's, good train parts held out of it, train defects; never calibration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.anomaly_fit import _beyond_chance, _Tried, fit_anomaly
from inspector.anomaly_views import distinct_views, parse_candidate, view_judges
from inspector.dataset import CALIBRATION, Sample, load_dataset
from inspector.errors import DataError
from inspector.settings import AnomalySettings, Settings
from inspector.training import train_model


def _views(texts: list[str], sizes: list[tuple[int, int]]):
    return distinct_views([parse_candidate(t, sizes) for t in texts], sizes, "part")


def test_a_near_twin_view_is_left_out_and_said(capsys):
    cells = [(300, 300)] * 4  # the demo's solar cells: auto is a 288 px square, 320 px is 11 % more
    kept = _views(["efficientnet_lite0@auto", "efficientnet_lite0@fit320"], cells)
    assert [v.label for v in kept] == ["efficientnet_lite0@fit288"]
    assert "efficientnet_lite0@fit320 left out" in capsys.readouterr().out


def test_views_that_differ_or_use_another_extractor_are_all_kept():
    bottles = [(448, 448)] * 4  # auto is held to 320 px: 448 px is another input
    assert len(_views(["efficientnet_lite0@auto", "efficientnet_lite0@fit448"], bottles)) == 2
    assert _views(["efficientnet_lite0@auto"], bottles)[0].label == "efficientnet_lite0@fit320"
    tiles = [(250, 600), (230, 620), (400, 300)]  # shapes vary: auto keeps them, fit320 squeezes
    assert len(_views(["efficientnet_lite0@auto", "efficientnet_lite0@fit320"], tiles)) == 2
    cells = [(300, 300)] * 4
    assert len(_views(["efficientnet_lite0@fit288", "dinov2_vits14@fit288"], cells)) == 2


def test_the_card_says_which_twin_was_left_out(synthetic_root, home):
    s = Settings(home=home)
    s.model.classifier = False  # the anomaly branch alone
    s.anomaly.candidates = ["efficientnet_lite0@auto", "efficientnet_lite0@fit240"]  # 96 px parts: auto is 256
    card = train_model(s, [synthetic_root], None, progress=False)
    spec = card.products["washer"].anomaly
    assert spec.view.label == "efficientnet_lite0@fit256"
    assert "efficientnet_lite0@fit240 left out" in spec.selected_on


def test_a_standardised_view_is_its_own_candidate():
    tiles = [(250, 600), (230, 620), (400, 300)]
    raw, std = _views(["efficientnet_lite0@auto", "efficientnet_lite0@auto+std"], tiles)
    assert std.standardise and not raw.standardise
    assert std.label == raw.label + "+std" and std.size == raw.size
    assert parse_candidate("efficientnet_lite0@fit320+std", tiles).label == "efficientnet_lite0@fit320+std"
    with pytest.raises(DataError, match=r"only option after '\+' is 'std'"):
        parse_candidate("efficientnet_lite0@auto+equalise", tiles)


def test_a_view_is_judged_on_parts_its_bank_never_saw_and_never_on_calibration_parts(synthetic_root):
    ds = load_dataset([synthetic_root])
    ds.hold_out_calibration(0.01)
    good = [s for s in ds.samples if s.split in ("train", CALIBRATION) and not s.is_defect]
    held, defects = view_judges(ds, "washer", good, most=10)
    assert held and not {s.path for s in held} & {s.path for s in ds.split(CALIBRATION)}
    assert len(held) <= 10 and all(s.split == "train" and not s.is_defect for s in held)
    assert len(defects) == 10 and all(s.split == "train" and s.is_defect for s in defects)
    assert view_judges(ds, "washer", good, most=10) == (held, defects)  # reruns agree


def test_the_card_says_how_many_parts_judged_each_view(synthetic_root, home):
    s = Settings(home=home)
    s.model.classifier = False
    s.anomaly.candidates = ["efficientnet_lite0@fit64", "efficientnet_lite0@fit128"]
    s.anomaly.view_judges = 10
    card = train_model(s, [synthetic_root], None, progress=False)
    val = load_dataset([synthetic_root]).split("val")
    n_good, n_defect = sum(not v.is_defect for v in val), sum(v.is_defect for v in val)
    note = card.products["washer"].anomaly.selected_on
    assert note.count(f"on {n_good + 10} good and {n_defect + 10} defect parts") == 2, note


def _candidate(label: str, scores: np.ndarray, parts: list[Sample]) -> _Tried:
    view = parse_candidate(label, [(96, 96)])
    return _Tried((0.0, 0.0, 0.0), view, None, {}, None, None, label, [], scores, parts)


def test_the_first_view_stays_unless_another_catches_more_beyond_chance():
    rng = np.random.default_rng(0)
    parts = [Sample(Path(f"g{i}.png"), "washer", "ok", "val") for i in range(300)]
    parts += [Sample(Path(f"d{i}.png"), "washer", "scratch", "val") for i in range(300)]
    good, bad = rng.normal(0, 1, 300), rng.normal(2.5, 1, 300)
    first = _candidate("efficientnet_lite0@fit256", np.r_[good, bad], parts)
    noise = rng.normal(0, 0.5, 600)
    hair = _candidate("efficientnet_lite0@fit160", np.r_[good, bad + 0.02] + noise, parts)  # a hair better, if at all
    clear = _candidate("efficientnet_lite0@fit128", np.r_[good, bad + 1.0], parts)  # clearly better
    kept, why = _beyond_chance(hair, first, 0.01, 0.95)
    assert kept is first and why.startswith("kept efficientnet_lite0@fit256") and "needs 95%" in why
    won, why = _beyond_chance(clear, first, 0.01, 0.95)
    assert won is clear and "beats efficientnet_lite0@fit256 in 100%" in why


def test_without_val_defects_only_the_first_view_is_built(synthetic_root, capsys):
    ds = load_dataset([synthetic_root])
    ds.samples = [replace(s, split="test") if s.split == "val" and s.is_defect else s for s in ds.samples]
    ds.hold_out_calibration(0.01)
    cfg = AnomalySettings(candidates=["efficientnet_lite0@fit64", "efficientnet_lite0@fit128"], pool_size=400)
    spec = fit_anomaly(cfg, ds, 0.01, torch.device("cpu"), 10**7, False).specs["washer"]
    assert spec.view.label == "efficientnet_lite0@fit64"
    assert "efficientnet_lite0@fit128 left out: nothing to judge it on" in spec.selected_on
    assert capsys.readouterr().out.count("bank of") == 1


def test_the_card_keeps_the_numerics_a_bank_was_built_in(synthetic_root):
    ds = load_dataset([synthetic_root])
    ds.hold_out_calibration(0.01)
    cfg = AnomalySettings(candidates=["efficientnet_lite0@fit64"], pool_size=400, precision="bfloat16")
    assert fit_anomaly(cfg, ds, 0.01, torch.device("cpu"), 10**7, False).specs["washer"].view.precision == "bfloat16"
