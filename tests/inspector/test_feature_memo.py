"""Training keeps patch features for reuse within one command: each image is extracted once per
view, the kept features are the very numbers a fresh extraction gives, and the memory is bounded."""

from __future__ import annotations

import hashlib

import torch

from inspector import training
from inspector.anomaly_fit import FeatureMemo, MemoExtractor, remember_patch_features
from inspector.settings import Settings
from models.anomaly import PatchExtractor, create_patch_extractor


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


def test_training_extracts_each_image_once_per_view(synthetic_root, home, monkeypatch):
    seen: list[tuple] = []
    forward = PatchExtractor.forward

    def counting(self, x):
        seen.extend((tuple(v.shape), hashlib.blake2b(v.numpy().tobytes()).digest()) for v in x)
        return forward(self, x)

    monkeypatch.setattr(PatchExtractor, "forward", counting)
    s = Settings(home=home)
    s.train.epochs, s.train.views = 3, 1
    with remember_patch_features(s.anomaly.memo_mb) as memo:
        card = training.train_model(s, [synthetic_root], None, progress=False)
        assert memo is not None and memo.hits > 0
        repeats = len(seen) - len(set(seen))
        # a retraining in the same command (the demo's): the champion's view, as retraining keeps it
        s.anomaly.views = {p: info.anomaly.view.label for p, info in card.products.items() if info.anomaly}
        training.train_model(s, [synthetic_root], None, progress=False)
    assert repeats == 0  # banks, val, calibration, type heads and test: once each
    assert len(seen) == len(set(seen))  # the second training extracted nothing it had seen
