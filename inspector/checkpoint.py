"""A saved model with everything needed to run it: classifier, image encoder, text bank."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from inspector.text_bank import TextBank
from models import CrossModalClassifier, ImageEncoder, create_image_encoder, create_text_encoder, load_checkpoint


def model_name(model_dir: Path, card: dict) -> str:
    """How a model is known in the store: its folder and the moment it was trained."""
    return f"{Path(model_dir).name}@{card['created_at']}"


def keep_recorded_model(settings, model_dir: Path) -> Path | None:
    """Before a model is trained into ``model_dir``: when the store recorded the model already
    there, move that folder aside (``current@<trained at>``) and point the store at it, so the
    version keeps its own weights for a rollback and the audit trail. -> where it went."""
    from inspector.store.repo import move_model_artifact
    from inspector.store.session import make_engine, session_factory

    card_path = Path(model_dir) / "card.json"
    db = settings.database_url
    if not card_path.exists() or (db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).exists()):
        return None  # nothing there, or no store that could have recorded it
    old = str(Path(model_dir).resolve())
    target = Path(model_dir).with_name(model_name(model_dir, json.loads(card_path.read_text())).replace(":", "-"))
    engine = make_engine(db)
    try:
        with session_factory(engine)() as s:
            os.replace(model_dir, target)
            try:
                if not move_model_artifact(s, old, str(target.resolve()), "train"):
                    os.replace(target, model_dir)  # recorded nowhere: overwriting loses nothing
                    return None
                s.commit()
            except BaseException:
                os.replace(target, model_dir)
                raise
    finally:
        engine.dispose()
    return target


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
