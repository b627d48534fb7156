"""Frozen CNNs folded for inference compute what they computed before."""

import pytest
import timm
import torch
from torch import nn

from models import create_image_encoder
from models.anomaly import create_patch_extractor
from models.anomaly.extractor import _cnn_body
from models.inference import fold_batchnorm, inference_copy


def _with_trained_norms(model: nn.Module) -> nn.Module:
    # fresh batch norms are the identity (mean 0, var 1, weight 1, bias 0): folding those proves nothing
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def test_a_folded_network_computes_the_same_and_holds_no_batch_norm():
    net = _with_trained_norms(timm.create_model("test_efficientnet", pretrained=False, features_only=True))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x)
        folded = fold_batchnorm(net)
        after = folded(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_inference_copy_leaves_the_encoder_it_was_made_from_as_it_was():
    # training saves and fine-tunes the encoder the station part was built from
    enc = _with_trained_norms(create_image_encoder("tiny_test"))
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    fast = inference_copy(enc)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(enc(x), fast(x.contiguous(memory_format=torch.channels_last)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert enc.state_dict().keys() == state.keys()
    assert all(torch.equal(enc.state_dict()[k], v) for k, v in state.items())


def test_the_patch_extractor_runs_no_stage_past_the_patches_it_reads_folded_and_computes_the_same():
    full = _with_trained_norms(timm.create_model("test_efficientnet", pretrained=False, features_only=True,
                                                 out_indices=(2, 3)))  # fmt: skip
    body = _cnn_body("test_efficientnet", full.state_dict)
    last = max(int(name.split(".")[1]) for name in body.feature_info.module_name())
    assert len(body.blocks) == last + 1 < len(full.blocks)
    x = torch.randn(2, 3, 64, 64)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    with torch.no_grad():
        for a, b in zip(full(x), body(x.contiguous(memory_format=torch.channels_last)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    ex = create_patch_extractor("tiny_test")
    assert ex(torch.randn(1, 3, 64, 64)).shape == (1, ex.dim, 8, 8)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="a torch built without oneDNN")
def test_a_part_inspected_alone_on_one_thread_gets_the_features_its_batch_got_on_every_core():
    # calibration scores batches on every core, the line one part per thread: torch's 1x1
    # convolution kernel depends on both, and the bank's thresholds hold for the numbers they saw
    ex = create_patch_extractor("efficientnet_lite0")  # the station's default, pretrained
    x = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    try:
        with torch.inference_mode():
            torch.set_num_threads(2)
            batch, batch_maps = ex(x), ex.body(x)
            torch.set_num_threads(1)
            alone = torch.cat([ex(x[i : i + 1]) for i in range(len(x))])
            alone_maps = [torch.cat(m) for m in zip(*(ex.body(x[i : i + 1]) for i in range(len(x))), strict=True)]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(alone_maps, batch_maps, strict=True))  # before float16 rounding
    assert torch.equal(alone, batch)
