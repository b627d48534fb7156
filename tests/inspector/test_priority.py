"""Model building yields the CPU to a line served on the same machine: the scheduler (its nightly
retraining) runs every thread at the lowest priority unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def thread_nice(pid: int) -> set[int]:
    """Every thread's nice value (Linux sets it per thread)."""
    found = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        found.add(int(fields[16]))  # field 19 of proc(5), counted from the state after the name
    return found


def scheduler_nice(home: Path, **env: str) -> set[int]:
    clean = {k: v for k, v in os.environ.items() if k != "INSPECTOR_TRAIN__NICE"}
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "inspector", "scheduler", "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean, **env},
    )
    try:
        for line in proc.stdout:
            if "scheduler running" in line:
                return thread_nice(proc.pid)
        raise AssertionError("the scheduler did not start")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_scheduler_runs_its_retraining_below_the_line(tmp_path):
    assert os.nice(0) < 19, "run the tests at a higher priority than the lowest"
    assert scheduler_nice(tmp_path / "a") == {19}
    assert scheduler_nice(tmp_path / "b", INSPECTOR_TRAIN__NICE="0") == {os.nice(0)}
