"""A saved model with everything needed to run it: its card and its parts, ready for the engine."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from inspector.parts import Part
from inspector.parts.anomaly import AnomalyPart
from inspector.parts.classifier import ClassifierPart
from inspector.text_bank import TextBank
from models import create_image_encoder
from models.anomaly import MemoryBanks, RegionTypeHead, SegmentationHead, create_patch_extractor
from models.card import ModelCard
from models.export import load_anomaly, load_classifier, read_card


def model_name(model_dir: Path, card: ModelCard) -> str:
    """How a model is known in the store: its folder and the moment it was trained."""
    return f"{Path(model_dir).name}@{card.created_at}"


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
    created = json.loads(card_path.read_text()).get("created_at", "unknown")
    target = Path(model_dir).with_name(f"{Path(model_dir).name}@{created}".replace(":", "-"))
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
    card: ModelCard
    parts: dict[str, Part]
    text: TextBank | None  # class-description embeddings, for every part that reads the manual
    finetuned: bool  # the classifier's encoder carries its own trained weights (not the cached features)


def text_bank(card: ModelCard, cache_dir: Path | None, dim: int = 384) -> TextBank:
    return TextBank.on_first_need(card.text_encoder, card.text_source, cache_dir, dim)


def load_model(model_dir: Path, device: torch.device, cache_dir: Path | None) -> LoadedModel:
    card = read_card(model_dir)
    parts: dict[str, Part] = {}
    text_dim = card.classifier.fusion.text_dim if card.classifier else 384
    text = text_bank(card, cache_dir, text_dim)
    finetuned = False
    if card.classifier is not None:
        spec = card.classifier
        model, extra = load_classifier(model_dir, spec, str(device))
        encoder = create_image_encoder(spec.backbone, input_size=spec.input_size)
        if extra:  # fine-tuned checkpoints carry their own backbone weights
            encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in extra.items()}, strict=True)
            finetuned = True
        parts["classifier"] = ClassifierPart(model, encoder.to(device).eval(), text, device, spec.precision)
    if card.anomaly_backbones:
        parts["anomaly"] = anomaly_part(card, load_anomaly(model_dir, str(device)), text, device)
    return LoadedModel(card, parts, text, finetuned)


def anomaly_part(
    card: ModelCard, tensors: dict[str, torch.Tensor], text: TextBank, device: torch.device
) -> AnomalyPart:
    extractors, banks, heads = {}, {}, {}
    for backbone in card.anomaly_backbones:
        extractors[backbone] = create_patch_extractor(backbone).to(device)
        banks[backbone] = MemoryBanks(extractors[backbone].dim, device=device)
    for key, tensor in tensors.items():
        kind, backbone, rest = key.split("/", 2)
        if kind == "bank":
            banks[backbone].add(rest, tensor)
    for backbone in card.type_heads:
        prefix = f"head/{backbone}/"
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        head = RegionTypeHead(extractors[backbone].dim, state["text.weight"].shape[1], state["text.weight"].shape[0])
        head.load_state_dict(state, strict=True)
        heads[backbone] = head.to(device).eval()
    views = {pid: p.anomaly.view for pid, p in card.products.items() if p.anomaly is not None}
    segs = {}
    for pid, p in card.products.items():
        if p.anomaly is not None and p.anomaly.segmentation is not None:
            prefix = f"seg/{pid}/"
            locates = p.anomaly.segmentation.taught_by == "masks"
            seg = SegmentationHead(extractors[p.anomaly.view.backbone].dim, locates=locates)
            seg.load_state_dict({k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)})
            segs[pid] = seg.to(device).eval()
    return AnomalyPart(extractors, banks, views, heads, text, device, segs)
