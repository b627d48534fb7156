"""The station serves with what it loaded out of the garbage collector's full passes: each pass
walked every long-lived object with all Python threads stopped, a pause that made parts late."""

from __future__ import annotations

import gc

import uvicorn

from inspector.service.app import serve


def test_the_station_serves_with_its_loaded_objects_frozen(service_settings, trained_model, monkeypatch):
    seen: dict[str, int] = {}

    def run(app, **kwargs) -> None:  # where the station would start serving
        seen["frozen"], seen["walked"] = gc.get_freeze_count(), len(gc.get_objects())

    monkeypatch.setattr(uvicorn, "run", run)
    try:
        serve(service_settings, trained_model)
    finally:
        gc.unfreeze()
    assert seen["frozen"] > 100_000  # torch, SQLAlchemy and the model, loaded before serving
    assert seen["walked"] < seen["frozen"] // 10  # what a full pass still walks
