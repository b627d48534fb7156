"""Candidate anomaly views are parsed from the product's image sizes, and a candidate that feeds
the extractor nearly the same pixels as an earlier one is not built twice."""

from __future__ import annotations

import pytest

from inspector.anomaly_fit import distinct_views, parse_candidate
from inspector.errors import DataError
from inspector.settings import Settings
from inspector.training import train_model


def _views(texts: list[str], sizes: list[tuple[int, int]]):
    return distinct_views([parse_candidate(t, sizes) for t in texts], sizes, "part")


def test_a_near_twin_view_is_left_out_and_said(capsys):
    cells = [(300, 300)] * 4  # the demo's solar cells: auto is a 288 px square, 320 px is 11 % more
    kept = _views(["efficientnet_lite0@auto", "efficientnet_lite0@fit320"], cells)
    assert [v.label for v in kept] == ["efficientnet_lite0@fit288"]
    assert "efficientnet_lite0@fit320 left out" in capsys.readouterr().out


def test_views_that_differ_or_use_another_extractor_are_all_kept():
    bottles = [(448, 448)] * 4  # auto is 448 px: 320 px is another input
    assert len(_views(["efficientnet_lite0@auto", "efficientnet_lite0@fit320"], bottles)) == 2
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
