from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from inspector.service.app import asgi_app, build_service
from inspector.settings import Settings
from tests.helpers.synthetic import make_image


def png_bytes(kind: str = "scratch", seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(make_image(kind, np.random.default_rng(seed))).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def service_settings(tmp_path, home):
    s = Settings(home=tmp_path)
    s.model.device = "cpu"
    return s


@pytest.fixture
def service(service_settings, trained_model):
    return build_service(service_settings, trained_model, max_batch=8, max_wait_ms=20, queue_size=64)


@pytest.fixture
def client(service):
    with TestClient(asgi_app(service, max_body_bytes=2 << 20)) as c:
        yield c
