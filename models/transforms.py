"""Image tensors in, model-ready tensors out. Pure torch: decoding files is the app's job."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def resize(image: np.ndarray, size: int | tuple[int, int]) -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [3, size, size] (or [3, h, w] for ``size=(h, w)``), antialiased bilinear.

    The whole part is kept (no centre crop): defects sit at edges too. Resizing uint8 runs
    torch's vectorised uint8 kernel, about 4x the float one on a CPU; training, serving and the
    drift reference all come through here, so they see the same pixels.
    """
    hw = (size, size) if isinstance(size, int) else size
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    if tuple(x.shape[-2:]) == hw:
        return x[0].clone()
    return F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)[0]


def standardise(x: torch.Tensor, spread: float = 0.25, floor: float = 1 / 64) -> torch.Tensor:
    """Float images [B, 3, h, w] in [0, 1] -> each one's grey levels moved to mean 0.5 and standard
    deviation ``spread`` (not clipped: a dark pit keeps its full contrast). A flat image stays flat
    instead of having its noise blown up (its deviation counts as at least ``floor``)."""
    mean = x.mean((1, 2, 3), keepdim=True)
    std = x.std((1, 2, 3), keepdim=True).clamp(min=floor)
    return (x - mean) / std * spread + 0.5


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1], same shape."""
    return x.float().div_(255)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """[..., 3, S, S] in [0, 1] -> the encoder's input scale."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - m).div_(s)


def preprocess(image: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 [H, W, 3] -> normalised float [3, size, size]."""
    return normalize(to_float(resize(image, size)), mean, std)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augmentations that suit inspection images: [3, S, S] in [0, 1] -> same.

    Parts arrive in any orientation, so flips and right-angle turns are free; lighting drifts,
    so brightness and contrast jitter; focus drifts, so mild blur; sensors are noisy. No colour
    shifts (most line cameras are monochrome) and no crops (a crop can cut the defect away).
    """

    def coin(p: float) -> bool:
        return torch.rand((), generator=generator).item() < p

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=generator).item()

    if coin(0.5):
        x = x.flip(-1)
    if coin(0.5):
        x = x.flip(-2)
    if coin(0.5):
        x = torch.rot90(x, 1, dims=(-2, -1))
    mean = x.mean()
    x = (x - mean) * uniform(0.8, 1.2) + mean * uniform(0.8, 1.2)
    if coin(0.2):
        sigma = uniform(0.3, 1.2)
        k = int(2 * math.ceil(2 * sigma) + 1)
        g = torch.exp(-((torch.arange(k) - k // 2) ** 2) / (2 * sigma**2))
        g = (g / g.sum()).to(x)
        x = F.conv2d(x.unsqueeze(1), g.view(1, 1, 1, k), padding=(0, k // 2))
        x = F.conv2d(x, g.view(1, 1, k, 1), padding=(k // 2, 0)).squeeze(1)
    if coin(0.2):
        x = x + torch.randn(x.shape, generator=generator) * uniform(0.005, 0.03)
    return x.clamp_(0, 1)
