"""Training keeps patch features for reuse within one command: each image is extracted once per
view, the kept features are the very numbers a fresh extraction gives, and the memory is bounded."""

from __future__ import annotations

import hashlib

import torch

from inspector import training
from inspector.feature_memo import FeatureMemo, MemoExtractor, remember_patch_features
from inspector.settings import Settings
from models.anomaly import PatchExtractor, create_patch_extractor


def _count_coresets(monkeypatch) -> list[int]:
    """The size of every coreset selected from here on (the real greedy still runs)."""
    from inspector import anomaly_fit

    calls: list[int] = []
    greedy = anomaly_fit.greedy_coreset
    monkeypatch.setattr(anomaly_fit, "greedy_coreset", lambda x, n, **kw: calls.append(n) or greedy(x, n, **kw))
    return calls


def _random_pools(g: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(50, 8, generator=g) for _ in range(10)]


def test_kept_features_are_exactly_the_fresh_ones_and_the_memo_is_bounded():
    extractor = create_patch_extractor("tiny_test")
    x = torch.rand(3, 3, 64, 64)
    with torch.inference_mode():
        fresh = extractor(x)
        one = fresh[0].numel() * 2  # bytes of one image's features as float16
        memo = FeatureMemo(limit_mb=2.5 * one / 2**20)  # room for two
        cached = MemoExtractor(extractor, memo)
        first, again = cached(x), cached(x)
    assert torch.equal(first, fresh)
    assert torch.equal(again[:2], fresh[:2])  # kept: the very numbers
    # recomputed alone: batch size changes the last float bits, as it does at the station
    torch.testing.assert_close(again[2], fresh[2], rtol=1e-3, atol=1e-5)
    assert memo.bytes == 2 * one and memo.misses == 3 + 1 and memo.hits == 2  # the third never fit


def test_a_second_training_in_one_command_extracts_nothing_and_selects_no_coreset_again(
    synthetic_root, home, monkeypatch
):
    seen: list[tuple] = []
    forward = PatchExtractor.forward

    def counting(self, x, precision="float32"):
        seen.extend((tuple(v.shape), hashlib.blake2b(v.numpy().tobytes()).digest()) for v in x)
        return forward(self, x, precision)

    monkeypatch.setattr(PatchExtractor, "forward", counting)
    calls = _count_coresets(monkeypatch)
    s = Settings(home=home)
    s.train.epochs, s.train.views = 3, 1
    with remember_patch_features(s.anomaly.memo_mb) as memo:
        card = training.train_model(s, [synthetic_root], None, progress=False)
        assert memo is not None and memo.hits > 0
        repeats, first = len(seen) - len(set(seen)), len(calls)
        # a retraining in the same command (the demo's): the champion's view, as retraining keeps it
        s.anomaly.views = {p: info.anomaly.view.label for p, info in card.products.items() if info.anomaly}
        again = training.train_model(s, [synthetic_root], None, progress=False)
    assert repeats == 0  # banks, val, calibration, type heads and test: once each
    assert len(seen) == len(set(seen))  # the second training extracted nothing it had seen
    assert first > 0 and len(calls) == first  # ... and selected no coreset again
    for product, info in card.products.items():
        assert again.products[product].decision.thresholds == info.decision.thresholds


def test_a_retraining_on_unchanged_good_images_reuses_the_coreset_and_builds_the_same_bank(monkeypatch):
    from inspector import anomaly_fit
    from inspector.settings import AnomalySettings

    calls = _count_coresets(monkeypatch)
    g = torch.Generator().manual_seed(0)
    pools = _random_pools(g)
    cfg, memo = AnomalySettings(bank_size=60), FeatureMemo()
    bank, rows = anomaly_fit.coreset_bank(pools, cfg, memo=memo)
    again, rows_again = anomaly_fit.coreset_bank([p.clone() for p in pools], cfg, memo=memo)
    assert len(calls) == 1 and torch.equal(bank, again) and torch.equal(rows, rows_again)
    anomaly_fit.coreset_bank([*pools, torch.randn(50, 8, generator=g)], cfg, memo=memo)  # one more good image
    anomaly_fit.coreset_bank(pools, cfg, start=rows[:10], memo=memo)  # another start: another selection
    assert len(calls) == 3


def test_the_seed_draws_the_bank_and_a_kept_selection_serves_its_own_seed_only(synthetic_root, monkeypatch):
    # the bank is part of a model's seed-to-seed spread: a benchmark over seeds must see it vary
    from inspector import anomaly_fit
    from inspector.dataset import load_dataset
    from inspector.settings import AnomalySettings

    calls = _count_coresets(monkeypatch)
    g = torch.Generator().manual_seed(0)
    pools = _random_pools(g)
    cfg, memo = AnomalySettings(bank_size=60), FeatureMemo()
    zero, _ = anomaly_fit.coreset_bank(pools, cfg, memo=memo, seed=0)
    one, _ = anomaly_fit.coreset_bank(pools, cfg, memo=memo, seed=1)
    again, _ = anomaly_fit.coreset_bank(pools, cfg, memo=memo, seed=1)
    assert not torch.equal(zero, one) and torch.equal(one, again) and len(calls) == 2

    ds = load_dataset(synthetic_root)
    cfg = AnomalySettings(candidates=["tiny_test@fit64"], pool_size=400)
    banks = [
        anomaly_fit.fit_anomaly(cfg, ds, 0.01, torch.device("cpu"), 10**7, False, seed=seed).banks["tiny_test"]
        for seed in (0, 1)
    ]
    assert not torch.equal(banks[0].bank("washer"), banks[1].bank("washer"))
