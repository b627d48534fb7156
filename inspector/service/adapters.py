"""Line adapters: the protocols a line talks to the station in, each one module behind ``LineAdapter``.

An adapter module offers ``from_settings(station) -> LineAdapter | None`` (None when its settings
are absent); ``ADAPTERS`` lists them, and the service starts and stops every adapter it gets.
The next protocol is one new module and one line here. Adapters start after the inspection
worker and stop before it drains, so every part they accepted is finished.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inspector.service.handshake import Handshake
    from inspector.service.mqtt import MqttPublisher
    from inspector.service.worker import InspectionWorker
    from inspector.settings import Settings

ADAPTERS = (
    "inspector.service.folder",
    "inspector.service.camera",
    "inspector.service.opcua_process",
    "inspector.service.sparkplug",
)


class LineAdapter(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Station:
    """What an adapter is built from."""

    settings: Settings
    worker: InspectionWorker
    handshake: Handshake
    db_engine: object
    mqtt: MqttPublisher | None = None  # the results bus, when a broker is configured (camera triggers ride on it)


def build_adapters(station: Station) -> list[LineAdapter]:
    made = []
    for module in ADAPTERS:
        adapter = importlib.import_module(module).from_settings(station)
        if adapter is not None:
            made.append(adapter)
    return made
