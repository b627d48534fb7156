"""Checkpoint = safetensors weights + a JSON model card, rebuilt from the card alone."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.classifier import CrossModalClassifier
from models.types import FusionConfig

WEIGHTS, CARD = "model.safetensors", "card.json"


def library_versions() -> dict[str, str]:
    import timm
    import transformers

    return {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(directory: Path, model: CrossModalClassifier, card: dict, extra: dict | None = None) -> Path:
    """Write weights and card into ``directory`` atomically (a half-written model is never loadable)."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    save_file(tensors, tmp / WEIGHTS)
    card = {**card, "fusion_config": model.cfg.to_dict(), "versions": library_versions()}
    (tmp / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        os.replace(directory, old)
        os.replace(tmp, directory)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        os.replace(tmp, directory)
    return directory


def load_checkpoint(directory: Path, device: str = "cpu") -> tuple[CrossModalClassifier, dict, dict]:
    """-> (classifier in eval mode, card, extra tensors)."""
    directory = Path(directory)
    if not (directory / CARD).exists() or not (directory / WEIGHTS).exists():
        raise FileNotFoundError(
            f"{directory}: not a model checkpoint (need {WEIGHTS} and {CARD}); run `inspector train`"
        )
    card = json.loads((directory / CARD).read_text())
    model = CrossModalClassifier(FusionConfig(**card["fusion_config"]))
    tensors = load_file(directory / WEIGHTS, device=device)
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("extra.")}, strict=True)
    return model.to(device).eval(), card, extra
