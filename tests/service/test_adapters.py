"""The service starts its line inputs from settings, each one adapter module: a hot folder, a
camera (interval or trigger mode), OPC UA and Sparkplug B."""

from __future__ import annotations

import pytest

from inspector.errors import InspectorError
from inspector.service.adapters import ADAPTERS, Station, build_adapters
from inspector.service.camera import CameraInput, TriggeredCamera
from inspector.service.folder import FolderInput
from inspector.service.mqtt import MqttPublisher
from inspector.settings import CameraSettings


def station(service, settings, mqtt=None) -> Station:
    return Station(settings, service.worker, service.handshake, service.db_engine, mqtt)


def test_no_line_settings_start_no_adapters(service, service_settings):
    assert build_adapters(station(service, service_settings)) == []


def test_a_watch_folder_and_a_camera_come_from_settings(service, service_settings, tmp_path):
    service_settings.service.watch = tmp_path / "in"
    service_settings.service.camera = CameraSettings(source="0", product="washer", name="cam3")
    made = build_adapters(station(service, service_settings))
    assert [type(a) for a in made] == [FolderInput, CameraInput]
    assert [a.name for a in made] == ["folder", "cam3"]
    assert made[0].root == tmp_path / "in"


def test_a_trigger_camera_rides_on_the_results_bus_and_needs_one(service, service_settings, tmp_path):
    service_settings.service.camera = CameraSettings(source="0", product="washer", name="cam4", mode="trigger")
    with pytest.raises(InspectorError, match="needs an MQTT broker"):
        build_adapters(station(service, service_settings))
    bus = MqttPublisher("127.0.0.1", 1883, tmp_path / "buf")
    (camera,) = build_adapters(station(service, service_settings, bus))
    assert isinstance(camera, TriggeredCamera) and camera.topic.endswith("/trigger")
    assert service.handshake.camera == "cam4"  # handshake frames come from this camera


def test_every_adapter_module_offers_from_settings():
    import importlib

    for module in ADAPTERS:
        assert callable(importlib.import_module(module).from_settings), module
