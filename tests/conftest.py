from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers.synthetic import make_product

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
torch.set_num_threads(min(2, os.cpu_count() or 1))
# commands run in this process (``main(["train", ...])``) must not lower its own CPU priority,
# nor that of every process it starts later; tests/inspector/test_priority.py checks the default
os.environ.setdefault("INSPECTOR_TRAIN__NICE", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real defect images not present ({SHARED_DATA}); they exist only on development machines")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_product(root, "washer", per_class=40)
    return root


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """The README demo's real solar-cell images (elpv-dataset, a declared dependency)."""
    from inspector.demo import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    """One working folder per test session: feature and weight caches are reused across tests."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def trained_model(synthetic_root, home) -> Path:
    """A real model (pretrained EfficientNet-Lite0, frozen) trained through the CLI on generated images."""
    from inspector.cli import main

    out = home / "models" / "washer"
    assert (
        main(
            [
                "train",
                "--data",
                str(synthetic_root),
                "--home",
                str(home),
                "--out",
                str(out),
                "--epochs",
                "25",
                "--views",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    return out


SLOW_TIMEOUT_S = 2400  # a retraining test runs ~200 s alone on 2 cores; this holds at 5x that, and still ends a hang


def pytest_collection_modifyitems(items):
    """Tests marked ``slow`` train and compare real models: they get a timeout sized for a busy
    machine instead of the suite's 600 s (which stays the guard against hangs everywhere else)."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
