"""A saved model with everything needed to run it: classifier, image encoder, text bank."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from inspector.text_bank import TextBank
from models import CrossModalClassifier, ImageEncoder, create_image_encoder, create_text_encoder, load_checkpoint


def model_name(model_dir: Path, card: dict) -> str:
    """How a model is known in the store: its folder and the moment it was trained."""
    return f"{Path(model_dir).name}@{card['created_at']}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class LoadedModel:
    model: CrossModalClassifier
    card: dict
    encoder: ImageEncoder
    bank: TextBank
    finetuned: bool  # the encoder carries its own trained weights (its features are not the cached ones)


def load_model(model_dir: Path, device: torch.device, cache_dir: Path | None) -> LoadedModel:
    model, card, extra = load_checkpoint(model_dir, str(device))
    encoder = create_image_encoder(card["backbone"])
    if extra:  # fine-tuned checkpoints carry their own backbone weights
        encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in extra.items()}, strict=True)
    source = card.get("text_source", "manual")
    name = card["text_encoder"]
    bank = TextBank(name, lambda: create_text_encoder(name), model.cfg.text_dim, cache_dir, source)
    return LoadedModel(model, card, encoder.to(device).eval(), bank, bool(extra))
