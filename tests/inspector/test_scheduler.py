"""Scheduled jobs live in the database; two schedulers firing retrains at once train one model."""

from __future__ import annotations

import threading

import pytest

from inspector.scheduler import build_scheduler, nightly_job, scheduled_jobs
from inspector.store.retraining import retrain_runs
from tests.inspector.test_retrain import _station


def test_jobs_are_stored_and_survive_a_restart(tmp_path):
    from inspector.settings import Settings
    from inspector.store.migrate import upgrade

    settings = Settings(home=tmp_path)
    upgrade(settings.database_url)
    first = build_scheduler(settings)
    first.start(paused=True)
    first.shutdown()
    stored = {j["id"]: j for j in scheduled_jobs(settings)}
    assert set(stored) == {"drift-check", "retrain-triggers", "nightly-retrain"}
    assert stored["nightly-retrain"]["next_run_time"].hour == 2
    settings.retrain.nightly_hour = None  # a restart with the nightly retrain switched off
    second = build_scheduler(settings)
    second.start(paused=True)
    second.shutdown()
    assert {j["id"] for j in scheduled_jobs(settings)} == {"drift-check", "retrain-triggers"}


@pytest.mark.slow
def test_two_schedulers_firing_at_once_run_one_retrain(trained_model, tmp_path):
    settings, db, sessions, _, _ = _station(tmp_path, trained_model)
    settings.train.epochs = 3  # what is tested is that one run trains, not what it learns
    config = settings.model_dump(mode="json")
    results, barrier = [], threading.Barrier(2)

    def fire():
        barrier.wait()
        results.append(nightly_job(config))

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as s:
        runs = retrain_runs(s)
    db.dispose()
    assert sorted(r.status for r in results) == ["finished", "skipped"], results
    assert len(runs) == 1 and runs[0].trigger == "nightly"
    assert runs[0].decision == "kept_candidate" and "no held-out reviewed" in runs[0].reason
