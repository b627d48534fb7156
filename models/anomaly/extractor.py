"""Patch features for anomaly detection: a frozen pretrained backbone's mid-level feature maps,
each locally averaged (3x3) and stacked on one grid, so every grid cell describes a small
neighbourhood of the part at two scales (PatchCore's recipe).

Mid-level maps, not the last stage: they keep the detail a small scratch changes, and the
last stage of an ImageNet network has already abstracted it away (on DINOv2 the last block
scored a line on grass at patch-AUROC 0.36, blocks 5 and 8 at 1.00).
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch
import torch.nn.functional as F
from torch import nn

from models.encoders.weights import cached_state_dict, dinov2_vits14_state_dict, efficientnet_lite_state_dict
from models.inference import Precision, autocast, channels_last, fold_batchnorm, onednn_convolutions
from models.registry import Registry

_TF_MEAN_STD = (0.5, 0.5, 0.5)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PatchExtractor(nn.Module):
    """x [B, 3, H, W] (normalised with ``mean``/``std``) -> patch features [B, dim, H/stride, W/stride].

    ``multiple``: H and W must be multiples of it (the engine resizes to fit).
    """

    def __init__(
        self,
        name: str,
        body: nn.Module,
        dim: int,
        stride: int,
        multiple: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        vit_blocks: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.name, self.body, self.dim, self.stride, self.multiple = name, body, dim, stride, multiple
        self.mean, self.std, self.vit_blocks = mean, std, vit_blocks
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PatchExtractor:
        return super().train(False)  # always frozen: batch norm statistics are the pretrained ones

    def forward(self, x: torch.Tensor, precision: Precision = "float32") -> torch.Tensor:
        """``precision``: the backbone's numerics (bf16 where a bank was built in it; the pooling
        after it stays float32)."""
        with autocast(precision, x.device):
            if self.vit_blocks:
                maps = self.body.forward_intermediates(x, indices=list(self.vit_blocks), intermediates_only=True)
            else:
                maps = self.body(channels_last(x))  # CNN feature pyramid, finest first
        # zero padding counts in the 3x3 mean (PatchCore's own pooling): the frame of the image is
        # damped, so crop borders do not outshout the part (pcb val AUROC 0.96 with it, 0.77 without)
        maps = [F.avg_pool2d(m.float(), 3, 1, 1) for m in maps]
        size = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear") for m in maps]
        # rounded to float16 precision: training keeps features as float16 for reuse, and the
        # station must score the very numbers its thresholds were calibrated on
        return torch.cat(maps, 1).half().float()  # [B, dim, h, w]


PATCH_EXTRACTORS: Registry[PatchExtractor] = Registry("patch extractor")


def _cnn_body(arch: str, weights: Callable[[], dict[str, torch.Tensor]] | None) -> nn.Module:
    """timm's feature pyramid (strides 8 and 16) of ``arch``, made for inference only.

    timm builds every stage and runs them all; the stages past stride 16 feed no patch (lite0:
    a quarter of the extractor's time at 288 px), so they are dropped. Batch norms are folded
    and the weights go channels-last (models/inference.py): another 20-40 % off. The extractor
    never learns, and the station and the banks' training run this same body, so they score
    the same numbers whatever the batch and the threads (``OneDnnConv2d``). Folding moves under
    1 % of the float16 features by one step, which sends the banks' greedy coreset down another
    path, so it was measured as an accuracy change: over
    four seeds on the demo's cells the banks' test AUROC stayed inside the seeds' own spread
    (mono 0.882-0.889 either way, poly 0.746-0.758 folded vs 0.746-0.774; docs/RESULTS.md)."""
    body = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(2, 3))
    if weights is not None:
        sd = weights()
        body.load_state_dict({k: sd[k] for k in body.state_dict()}, strict=True)
    last = max(int(name.split(".")[1]) for name in body.feature_info.module_name())  # "blocks.4"
    body.blocks = body.blocks[: last + 1]
    return onednn_convolutions(fold_batchnorm(body.eval())).to(memory_format=torch.channels_last)


def _efficientnet_lite(variant: str, pretrained: bool) -> PatchExtractor:
    arch = f"tf_efficientnet_{variant}"

    def weights() -> dict[str, torch.Tensor]:
        ref = timm.create_model(arch, pretrained=False).state_dict()
        return cached_state_dict(arch, lambda: efficientnet_lite_state_dict(variant, ref))

    body = _cnn_body(arch, weights if pretrained else None)
    dim = sum(body.feature_info.channels())
    return PatchExtractor(f"efficientnet_{variant}", body, dim, 8, 16, _TF_MEAN_STD, _TF_MEAN_STD)


@PATCH_EXTRACTORS.register("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool = True) -> PatchExtractor:
    """EfficientNet-Lite0 stages at stride 8 (40 ch) and 16 (112 ch): 152-d patches on a stride-8 grid."""
    return _efficientnet_lite("lite0", pretrained)


@PATCH_EXTRACTORS.register("efficientnet_lite1")
def efficientnet_lite1(pretrained: bool = True) -> PatchExtractor:
    return _efficientnet_lite("lite1", pretrained)


@PATCH_EXTRACTORS.register("dinov2_vits14")
def dinov2_vits14(pretrained: bool = True) -> PatchExtractor:
    """DINOv2-initialised ViT-S/14 blocks 5 and 8: 768-d patches on a stride-14 grid, any size."""
    body = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=518, num_classes=0, dynamic_img_size=True
    )
    if pretrained:
        body.load_state_dict(cached_state_dict("vit_small_patch14_dinov2", dinov2_vits14_state_dict), strict=True)
    return PatchExtractor("dinov2_vits14", body, 768, 14, 14, _IMAGENET_MEAN, _IMAGENET_STD, vit_blocks=(5, 8))


@PATCH_EXTRACTORS.register("tiny_test")
def tiny_test(pretrained: bool = False) -> PatchExtractor:
    """timm's test-sized EfficientNet with random weights: for fast tests only."""
    body = _cnn_body("test_efficientnet", None)
    dim = sum(body.feature_info.channels())
    return PatchExtractor("tiny_test", body, dim, 8, 16, _IMAGENET_MEAN, _IMAGENET_STD)


def create_patch_extractor(name: str, pretrained: bool = True) -> PatchExtractor:
    return PATCH_EXTRACTORS.create(name, pretrained=pretrained)
