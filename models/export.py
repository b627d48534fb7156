"""Checkpoint = a typed model card + safetensors per part, rebuilt from the card alone.

    card.json            ModelCard (models/card.py)
    model.safetensors    the classifier (and, fine-tuned, its image encoder as ``extra.encoder.*``)
    anomaly.safetensors  memory banks ``bank/<backbone>/<product>`` and type heads ``head/<backbone>/<param>``

A folder is written beside the target and swapped in whole: a reader never sees half a model.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from models.card import ClassifierSpec, ModelCard, load_card
from models.classifier import Classifier, build_classifier

WEIGHTS, ANOMALY, CARD = "model.safetensors", "anomaly.safetensors", "card.json"


def library_versions() -> dict[str, str]:
    import timm
    import transformers

    return {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_checkpoint(
    directory: Path,
    card: ModelCard,
    classifier: Classifier | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    anomaly: dict[str, torch.Tensor] | None = None,
    write_more: Callable[[Path], None] | None = None,
) -> Path:
    """Write the card and weights into ``directory`` atomically; ``write_more(folder)`` adds
    files (the drift reference) to the folder before it is swapped in."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if classifier is not None:
            tensors = _cpu(classifier.state_dict())
            tensors.update({f"extra.{k}": v for k, v in _cpu(extra or {}).items()})
            save_file(tensors, tmp / WEIGHTS)
        if anomaly:
            save_file(_cpu(anomaly), tmp / ANOMALY)
        card = card.model_copy(update={"versions": library_versions()})
        (tmp / CARD).write_text(card.to_json())
        if write_more is not None:
            write_more(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old)
    else:
        os.replace(tmp, directory)
    return directory


def read_card(directory: Path) -> ModelCard:
    directory = Path(directory)
    if not (directory / CARD).exists():
        raise FileNotFoundError(f"{directory}: not a model checkpoint (no {CARD}); run `inspector train`")
    return load_card(directory / CARD)


def load_classifier(
    directory: Path, spec: ClassifierSpec, device: str = "cpu"
) -> tuple[Classifier, dict[str, torch.Tensor]]:
    """-> (classifier in eval mode with the card's temperatures, extra tensors)."""
    path = Path(directory) / WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"{directory}: the card names a classifier but {WEIGHTS} is missing")
    model = build_classifier(spec.fusion, spec.members)
    tensors = load_file(path, device=device)
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("extra.")}, strict=True)
    model.class_temperature.fill_(spec.class_temperature)
    model.defect_temperature.fill_(spec.defect_temperature)
    return model.to(device).eval(), extra


def load_anomaly(directory: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    path = Path(directory) / ANOMALY
    if not path.exists():
        raise FileNotFoundError(f"{directory}: the card names memory banks but {ANOMALY} is missing")
    return load_file(path, device=device)
