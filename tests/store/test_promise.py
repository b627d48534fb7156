"""The store keeps what each model's promise stands on, and reads it back without the ML stack."""

from __future__ import annotations

import copy

from inspector.store.promise import Setter, promise_basis
from inspector.store.repo import register_model
from models.card import ThresholdBasis, ThresholdSetter, parse_card
from tests.models.test_card import FORMAT_1


def test_a_registered_card_names_the_parts_its_thresholds_stand_on(Session):
    card = parse_card(copy.deepcopy(FORMAT_1))
    washer = card.products["washer"]
    washer.manual = "# Washer\n" + "a long manual " * 200
    washer.decision.basis = ThresholdBasis(
        set_by=[ThresholdSetter(image="/data/ok/w7.png", part="w7", score=0.61)],
        reject_without=0.55, val_escape=0.2, val_escape_without=0.1,
    )  # fmt: skip
    with Session() as s:
        mv = register_model(s, "m@1", "/models/m", card.summary())
        old = register_model(s, "m@0", "/models/old", {"format": 7})  # stored before cards kept products
        other = {"basis": {"set_by": ["w7"]}, "thresholds": {"reject": 0.6}}  # a card of another version
        odd = register_model(s, "m@9", "/models/odd", {"products": {"washer": {"decision": other}}})
        s.commit()
        [basis] = promise_basis(s, mv.id)
        assert promise_basis(s, old.id) == [] and promise_basis(s, 999) == [] and promise_basis(s, odd.id) == []
        assert "a long manual" not in str(s.get(type(mv), mv.id).card)  # the manual's text is not stored twice
    assert basis.product == "washer" and basis.set_by == (Setter("/data/ok/w7.png", "w7", 0.61),)
    assert (basis.reject, basis.reject_without, basis.calibration_parts, basis.guaranteed) == (0.6, 0.55, 120, True)
    assert (basis.val_escape, basis.val_escape_without) == (0.2, 0.1)
