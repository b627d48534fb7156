"""Fusion variants; importing each module runs its registration."""

from models.fusion import concat, cross_attention, gated, late, low_rank  # noqa: F401
from models.fusion.base import FUSIONS, Fusion

__all__ = ["FUSIONS", "Fusion", "create_fusion", "list_fusions"]


def create_fusion(cfg) -> Fusion:
    return FUSIONS.create(cfg.fusion, cfg=cfg)


def list_fusions() -> list[str]:
    return FUSIONS.names()
