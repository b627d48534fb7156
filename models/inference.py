"""Frozen CNNs made cheaper to run on CPU, computing the same function up to float rounding.

On the 2-core station CPU (EfficientNet-Lite0 at 224 px, batch 1-16) two changes take a fifth
to a third off a frozen backbone's time: each BatchNorm folded into the convolution before it
(a BN in eval mode is an affine map per channel; folded, it costs nothing), and channels-last
memory (oneDNN's convolutions run NHWC natively; NCHW tensors are reordered around every layer).
Outputs differ from the unfolded network's by about 1e-6 relative. That is harmless where they
are scored (the classifier at inspection, calibrated through the same copy) but not where they
are rounded and searched (the patch extractor: see ``models/anomaly/extractor.py``).

Both copies also run every convolution through oneDNN (``onednn_convolutions``), so that a part
inspected alone on one thread gets the numbers its batch got at calibration on every core.
"""

from __future__ import annotations

import copy
import os
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same
from torch import nn


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d into the Conv2d registered just before it, in place -> ``module``.

    The pairing is by registration order, which is the data flow in timm's CNN blocks (conv_pw,
    bn1, conv_dw, bn2, ...); timm's BatchNormAct2d keeps its dropout and activation. Only for a
    module in eval mode that will not learn again: the running statistics become weights."""
    children = list(module.named_children())
    for (_, conv), (bn_name, bn) in pairwise(children):
        if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats):
            continue
        with torch.no_grad():
            scale = (
                bn.weight / torch.sqrt(bn.running_var + bn.eps)
                if bn.affine
                else 1 / torch.sqrt(bn.running_var + bn.eps)
            )
            shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            bias = shift if conv.bias is None else conv.bias * scale + shift
            conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        setattr(module, bn_name, nn.Sequential(*rest))
    for _, child in children:
        fold_batchnorm(child)
    return module


class OneDnnConv2d(nn.Module):
    """A frozen Conv2d (or timm's TF-"same" Conv2dSame) that always takes oneDNN's kernel on a CPU.

    torch picks a 1x1 convolution's kernel by the batch and the thread count: its own (THNN) for
    a batch under 16 on one thread, oneDNN otherwise, and the two round differently. A station
    inspecting one part per thread would then score other numbers than calibration computed on
    batches on every core: 0.3 % of the demo's float16 patch features one step apart, and 275 of
    402 test cells' defect scores moved (by at most 6e-5; no verdict). For EfficientNet-Lite's
    convolutions oneDNN's result depends on neither (1 to 8 threads, batch 1 and 16, measured;
    oneDNN does not promise it for every layer), and it is as fast (Lite0's patch stages at 288 px
    on one core: 20.7 ms, against 20.6 ms with torch's choice). Elsewhere (CUDA, autocast) it is
    torch's own."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.same = isinstance(conv, Conv2dSame)  # its padding is worked out per input size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        if x.is_cpu and x.dtype == self.weight.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
            return torch.ops.aten.mkldnn_convolution(
                x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def onednn_convolutions(module: nn.Module) -> nn.Module:
    """Every zero-padded Conv2d of a frozen ``module`` replaced by ``OneDnnConv2d``, in place; as it
    was on a torch built without oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return module
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.padding_mode == "zeros" and not isinstance(child.padding, str):
            setattr(module, name, OneDnnConv2d(child))
        else:
            onednn_convolutions(child)
    return module


def inference_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` for inference only: BatchNorm folded, oneDNN's convolutions,
    weights channels-last. The original is left as it was (training code still saves and
    fine-tunes it)."""
    fast = onednn_convolutions(fold_batchnorm(copy.deepcopy(module).eval()))
    fast.requires_grad_(False)
    return fast.to(memory_format=torch.channels_last)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """An image batch [B, C, H, W] in the layout ``inference_copy``'s convolutions run natively."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


Precision = Literal["float32", "bfloat16"]


def available_cores() -> int:
    """The cores this process may run on (a container's or taskset's share), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def bf16_is_fast(device: torch.device) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware: AMX tiles (Xeon since Sapphire
    Rapids) or AVX512-BF16 dot products (AMD Zen 4 and later, Cooper Lake). A bank search's
    product there takes a tenth (AMX) or two thirds (AVX512-BF16) of its float32 time; without
    either, bf16 is emulated and slower than float32."""
    if device.type != "cpu":
        return False
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def precision_for(device: torch.device) -> Precision:
    """The numerics a classifier trained and calibrated on ``device`` runs with: bfloat16 on CUDA
    (tensor cores; no loss scaling needed), float32 elsewhere. Not bf16 on a CPU with bf16 units:
    next to the anomaly part the classifier is not a part's critical path there (15 against
    33 ms on one core), and bf16 moved its demo AUROC and escapes (docs/PERFORMANCE.md)."""
    return "bfloat16" if device.type == "cuda" else "float32"


def autocast(precision: Precision, device: torch.device) -> torch.autocast:
    """``precision``'s numerics on ``device``: a classifier calibrated in bfloat16 runs in bfloat16
    on a CPU too, and one calibrated in float32 runs in float32 on a GPU, since its thresholds
    hold only for the scores they were set on (bf16 moves P(defect) by up to 0.3 on the demo)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
