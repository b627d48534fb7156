"""How many threads the model runs on: one core is left to the rest of a PLC-driven station."""

import pytest
import torch

from inspector.service.app import model_threads, serve
from inspector.settings import OpcUaSettings, ServiceSettings, Settings


@pytest.mark.parametrize(
    ("opcua", "setting", "cores", "threads"),
    [
        (True, None, 2, 1),  # a PLC holds one part in flight: a layer must not wait for a busy core
        (True, None, 16, 15),
        (True, None, 1, 1),
        (False, None, 2, 2),  # batched HTTP or folder load: every core moves more images
        (True, 2, 2, 2),  # the station's own setting wins either way
        (False, 1, 8, 1),
    ],
)
def test_the_model_leaves_one_core_to_a_plc_driven_station(opcua, setting, cores, threads):
    cfg = ServiceSettings(opcua=OpcUaSettings() if opcua else None, model_threads=setting)
    assert model_threads(cfg, cores) == threads


def test_serve_sets_the_threads_before_it_loads_the_model(tmp_path):
    before = torch.get_num_threads()
    settings = Settings(home=tmp_path)  # no model in it: serve stops where it would load one
    settings.service.model_threads = 1 if before > 1 else 2
    try:
        with pytest.raises(FileNotFoundError, match="not a model checkpoint"):
            serve(settings)
        assert torch.get_num_threads() == settings.service.model_threads
    finally:
        torch.set_num_threads(before)
