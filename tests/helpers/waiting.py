"""Waiting in tests for what a station's threads do after they answer."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(cond: Callable[[], object], timeout: float = 60.0) -> bool:
    """Poll ``cond`` until it holds or ``timeout`` s pass. -> whether it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.05)
    return bool(cond())
