"""What a stored model's false-reject promise stands on, per product, read from the card the
store keeps for it (``ModelCard.summary``), without the ML stack behind the dashboard.

With a few hundred good calibration parts, the reject threshold is their second or third
largest score. So one or two good-labelled parts set it, and a person looking at them can tell
whether they really are good. These are the parts the models page shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from inspector.store.modeling import ModelVersion


@dataclass(frozen=True)
class Setter:
    image: str  # the path the training data gave
    part: str  # its physical part (a tile's lightings are one part)
    score: float  # on the decision's scale


@dataclass(frozen=True)
class PromiseBasis:
    product: str
    reject: float
    target_frr: float
    guaranteed: bool  # False: too few good parts for a promise; the threshold is the largest score
    calibration_parts: int
    set_by: tuple[Setter, ...]
    reject_without: float | None  # the threshold if those parts were found defective
    val_escape: float | None  # val's defects passing at the threshold
    val_escape_without: float | None  # ... and at reject_without
    defect_types: tuple[str, ...] = ()  # the product's, as the model knows them


def promise_basis(session: Session, model_id: int) -> list[PromiseBasis]:
    """Per product of the model, by name; empty for a model whose stored card has no basis
    (registered before cards kept their products' decisions, or never calibrated)."""
    mv = session.get(ModelVersion, model_id)
    card = (mv.card if mv is not None else None) or {}
    products = card.get("products") or {}
    return [b for pid, pc in sorted(products.items()) if (b := _basis(pid, pc)) is not None]


def _basis(product: str, card: dict[str, Any]) -> PromiseBasis | None:
    try:
        return _read(product, card)
    except (AttributeError, KeyError, TypeError, ValueError):  # a card of another version: nothing to show
        return None


def _read(product: str, card: dict[str, Any]) -> PromiseBasis | None:
    decision = card.get("decision") or {}
    basis, th = decision.get("basis"), decision.get("thresholds")
    if not basis or not basis.get("set_by") or not th:
        return None
    return PromiseBasis(
        product=product,
        reject=float(th["reject"]),
        target_frr=float(th["target_frr"]),
        guaranteed=bool(th["guaranteed"]),
        calibration_parts=int(th.get("n_parts") or th["n_good"]),  # images before card format 13
        set_by=tuple(Setter(str(s["image"]), str(s["part"]), float(s["score"])) for s in basis["set_by"]),
        reject_without=basis.get("reject_without"),
        val_escape=basis.get("val_escape"),
        val_escape_without=basis.get("val_escape_without"),
        defect_types=tuple(map(str, card.get("classes", ["ok"])[1:])),
    )
