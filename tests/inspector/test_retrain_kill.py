"""kill -9 during training: the champion keeps serving, the lease lapses, the run is marked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from inspector.retrain import run_retrain
from inspector.store.monitoring import champion
from inspector.store.retraining import retrain_runs
from tests.inspector.test_retrain import _station


@pytest.mark.slow
def test_sigkill_mid_training_leaves_the_champion(trained_model, tmp_path, monkeypatch):
    settings, db, sessions, _, _ = _station(tmp_path, trained_model)
    with sessions() as s:
        before = champion(s)
    # long training (no early stop), so the kill lands mid-training on a fast machine too
    env = {**os.environ, "INSPECTOR_RETRAIN__LEASE_MINUTES": "0.05", "INSPECTOR_TRAIN__EPOCHS": "200",
           "INSPECTOR_TRAIN__PATIENCE": "200"}  # fmt: skip
    cmd = [sys.executable, "-m", "inspector", "retrain", "--now", "--home", str(tmp_path), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as s:
                runs = retrain_runs(s)
            if runs and (tmp_path / "retrain" / f"run-{runs[0].id}").is_dir():
                break
            assert proc.poll() is None, "the retrain process ended before it could be killed"
            time.sleep(0.2)
        time.sleep(3)  # training under way
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with sessions() as s:
        assert champion(s) == before
        assert retrain_runs(s)[0].status == "running"  # as the killed process left it

    time.sleep(3.5)  # the killed run's lease (3 s) lapses: the next run may start
    monkeypatch.setattr("inspector.training.train_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    settings.retrain.lease_minutes = 0.05
    assert run_retrain(settings, sessions, trigger="after-crash").status == "failed"
    with sessions() as s:
        runs = retrain_runs(s)
        assert champion(s) == before
    db.dispose()
    assert [r.status for r in runs] == ["failed", "interrupted"]
