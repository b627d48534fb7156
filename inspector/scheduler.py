"""Scheduled jobs: drift checks, retrain triggers and the nightly retrain (APScheduler 3.x).

Jobs live in the same database (SQLAlchemyJobStore on ``apscheduler_jobs``, a table the
migrations create), so their next run times survive restarts. Several schedulers may run on
one database: the retrain lease (``inspector.retrain``) lets only one run train at a time.
Job arguments are plain settings dicts, so the job store can pickle them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from inspector.settings import Settings
from inspector.store.session import make_engine, session_factory

if TYPE_CHECKING:  # imported when a job runs: the scheduler process starts without the ML stack
    from inspector.retrain import RetrainOutcome

log = logging.getLogger(__name__)


def _open(config: dict):
    settings = Settings(**config)
    engine = make_engine(settings.database_url)
    return settings, engine, session_factory(engine)


def drift_job(config: dict) -> int:
    from inspector.drift import run_drift_check

    settings, engine, sessions = _open(config)
    try:
        with sessions() as s:
            events = run_drift_check(s, settings.drift)
        alarms = [e for e in events if e.severity != "ok"]
        for e in alarms:
            log.warning("drift %s on %s/%s: %s=%.4g", e.severity, e.product_id, e.line, e.metric, e.value)
        return len(events)
    finally:
        engine.dispose()


def trigger_job(config: dict) -> RetrainOutcome | None:
    from inspector.retrain import due_trigger, run_retrain

    settings, engine, sessions = _open(config)
    try:
        reason = due_trigger(settings, sessions)
        return run_retrain(settings, sessions, trigger=reason) if reason else None
    finally:
        engine.dispose()


def nightly_job(config: dict) -> RetrainOutcome:
    from inspector.retrain import run_retrain

    settings, engine, sessions = _open(config)
    try:
        return run_retrain(settings, sessions, trigger="nightly")
    finally:
        engine.dispose()


def build_scheduler(settings: Settings, blocking: bool = False) -> BaseScheduler:
    """A scheduler with the three jobs registered (replacing earlier definitions of them)."""
    store = SQLAlchemyJobStore(engine=make_engine(settings.database_url), tablename="apscheduler_jobs")
    cls = BlockingScheduler if blocking else BackgroundScheduler
    sched = cls(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(2)},
        # a station that was off for a night runs a missed job once, not once per missed slot
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600},
    )
    config = [settings.model_dump(mode="json")]
    d, r = settings.drift, settings.retrain
    sched.add_job(
        f"{__name__}:drift_job", "interval", minutes=d.interval_minutes, args=config, id="drift-check",
        name="drift check", replace_existing=True,
    )  # fmt: skip
    sched.add_job(
        f"{__name__}:trigger_job", "interval", minutes=r.check_minutes, args=config, id="retrain-triggers",
        name="retrain triggers (reviews, drift)", replace_existing=True,
    )  # fmt: skip
    if r.nightly_hour is not None:
        sched.add_job(
            f"{__name__}:nightly_job", "cron", hour=r.nightly_hour, args=config, id="nightly-retrain",
            name="nightly retrain", replace_existing=True,
        )  # fmt: skip
    else:
        with contextlib.suppress(JobLookupError):  # switched off since the last start
            store.remove_job("nightly-retrain")
    return sched


def scheduled_jobs(settings: Settings) -> list[dict]:
    """Jobs and their next run times as stored (for the CLI and the dashboard)."""
    engine = make_engine(settings.database_url)
    store = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
    try:
        return [{"id": j.id, "name": j.name, "next_run_time": j.next_run_time} for j in store.get_all_jobs()]
    finally:
        engine.dispose()
