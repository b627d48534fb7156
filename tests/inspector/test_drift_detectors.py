"""Each drift detector on windows of real images (solar cells from the demo data, and PCB crops
from ../shared/data where present): simulated line changes are detected within 20 images, and
windows of unchanged production raise no alarm. bench/drift.py measures the rates at length."""

from __future__ import annotations

import random

import numpy as np
import pytest

from inspector.dataset import load_dataset
from inspector.drift import embedding_drift, stat_drift
from inspector.settings import DriftSettings
from models import create_image_encoder
from models.drift import fit_projection
from tests.helpers.shifts import blurred, darker, load_all, signals

CFG = DriftSettings(permutations=1000)
WINDOW = 20


def _windows(ds, product: str, other: str, pool: int = 80):
    rng = random.Random(0)
    mine = [s for s in ds.samples if s.product == product]
    ok_train = [s for s in mine if s.defect_type == "ok" and s.split == "train"]
    ok_held = [s for s in mine if s.defect_type == "ok" and s.split != "train"]
    ref = rng.sample(ok_train, min(300, len(ok_train)))  # as training draws its drift reference
    held = load_all(s.path for s in rng.sample(ok_held, pool))
    damaged = [s for s in mine if s.is_defect]
    others = [s for s in ds.samples if s.product == other and s.defect_type == "ok"]
    encoder = create_image_encoder("efficientnet_lite0").eval()
    ref_pooled, ref_stats = signals(encoder, load_all(s.path for s in ref))
    proj = fit_projection(ref_pooled)
    cases = {
        "unchanged": held,
        "darker": [darker(im) for im in held[:WINDOW]],
        "blurred": [blurred(im) for im in held[:WINDOW]],
        "unseen_defect": load_all(s.path for s in rng.sample(damaged, WINDOW)),
        "other_product": load_all(s.path for s in rng.sample(others, WINDOW)),
    }
    out = {}
    for name, images in cases.items():
        pooled, stats = signals(encoder, images)
        out[name] = (proj(pooled), stats)
    return proj(ref_pooled), ref_stats, out


@pytest.fixture(scope="module")
def windows(demo_data):
    return _windows(load_dataset([demo_data]), "solar-cell-mono", "solar-cell-poly")


def _severity(findings, metric):
    return next(f.severity for f in findings if f.metric == metric)


def _unchanged_alarms(ref_emb, ref_stats, emb, stats) -> tuple[int, int]:
    """Over 15 windows of 40 unchanged parts: (windows with a high alarm, windows with a warning)."""
    rng = np.random.default_rng(0)
    high = warn = 0
    for i in range(15):
        idx = rng.choice(len(emb), 40, replace=False)
        found = [embedding_drift(ref_emb, emb[idx], CFG, seed=i), *stat_drift(ref_stats, stats[idx], CFG)]
        high += any(f.severity == "high" for f in found)
        warn += any(f.severity == "warn" for f in found)
    return high, warn


def test_unchanged_production_raises_no_high_alarm(windows):
    """High is what triggers retraining; warnings on unchanged parts are measured (not bounded
    here) by bench/drift.py: 0-10 % of windows on solar cells and pcb."""
    ref_emb, ref_stats, cases = windows
    high, warn = _unchanged_alarms(ref_emb, ref_stats, *cases["unchanged"])
    assert high == 0, f"{high} high alarms ({warn} warnings) over 15 unchanged windows"


@pytest.mark.parametrize("case", ["blurred", "unseen_defect", "other_product"])
def test_embedding_mmd_detects_changed_images(windows, case):
    ref_emb, _, cases = windows
    finding = embedding_drift(ref_emb, cases[case][0], CFG)
    assert finding.severity == "high", finding


def test_brightness_psi_detects_lighting_loss(windows):
    _, ref_stats, cases = windows
    assert _severity(stat_drift(ref_stats, cases["darker"][1], CFG), "psi_brightness") == "high"


def test_sharpness_psi_detects_blur(windows):
    _, ref_stats, cases = windows
    assert _severity(stat_drift(ref_stats, cases["blurred"][1], CFG), "psi_sharpness") == "high"


@pytest.mark.shared
def test_pcb_from_shared_data(shared_data):
    """The same detectors on PCB crops from ../shared/data (skipped where it is absent)."""
    ref_emb, ref_stats, cases = _windows(
        load_dataset([shared_data / "pcb", shared_data / "magnetic-tile"]), "pcb", "magnetic-tile"
    )
    high, warn = _unchanged_alarms(ref_emb, ref_stats, *cases["unchanged"])
    assert high == 0, f"{high} high alarms ({warn} warnings) over 15 unchanged windows"
    assert _severity(stat_drift(ref_stats, cases["darker"][1], CFG), "psi_brightness") == "high"
    assert _severity(stat_drift(ref_stats, cases["blurred"][1], CFG), "psi_sharpness") == "high"
    assert embedding_drift(ref_emb, cases["other_product"][0], CFG).severity == "high"
