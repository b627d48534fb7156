"""Commands that run the model's life on the line: models (champion, rollback), drift, retrain, scheduler."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from inspector.cli.common import EPILOG, add_store, open_sessions, store_settings
from inspector.errors import InspectorError
from inspector.runtime import yield_cpu_to_the_line


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "models",
        help="model versions: list them, promote one to champion, roll back to the previous champion",
        epilog=EPILOG,
        description="The champion serves the line; a running station switches to a new champion within seconds.",
    )
    m.add_argument("action", choices=["list", "promote", "rollback"])
    m.add_argument("id", nargs="?", type=int, help="promote: the model version id (see `inspector models list`)")
    m.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who is acting (audit log)")
    add_store(m)
    m.set_defaults(handler=cmd_models)

    dr = sub.add_parser(
        "drift",
        help="check production against the champion's reference now; write and print drift events",
        epilog=EPILOG,
    )
    dr.add_argument("action", choices=["check"])
    dr.add_argument("--all", action="store_true", help="print every metric, not only warnings and alarms")
    add_store(dr)
    dr.set_defaults(handler=cmd_drift)

    rt = sub.add_parser(
        "retrain",
        help="train a challenger on the original data plus reviewed production images; promote if better",
        epilog=EPILOG,
        description="Without --now, run only when a trigger is due (new reviews, label corrections, high drift).",
    )
    rt.add_argument("--now", action="store_true", help="run now, whatever the triggers say")
    rt.add_argument("--data", type=Path, action="append", metavar="DIR", help="original training data (default: "
                    "the folders recorded in the champion's model card)")  # fmt: skip
    rt.add_argument("--device", help="cpu, cuda or auto")
    add_store(rt)
    rt.set_defaults(handler=cmd_retrain)

    sc = sub.add_parser(
        "scheduler",
        help="run the scheduled jobs: drift checks, retrain triggers, nightly retrain (until Ctrl-C)",
        epilog=EPILOG,
    )
    sc.add_argument("--list", action="store_true", help="only list the stored jobs and their next run times")
    add_store(sc)
    sc.set_defaults(handler=cmd_scheduler)


def cmd_models(args: argparse.Namespace) -> int:
    from inspector.store.queries import model_history
    from inspector.store.repo import promote_model
    from inspector.store.retraining import rollback_model

    with open_sessions(store_settings(args))() as s:
        if args.action == "promote":
            if args.id is None:
                raise InspectorError("models promote needs a model version ID")
            mv = promote_model(s, args.id, args.actor)
            s.commit()
            print(f"champion: {mv.id} {mv.name}")
        elif args.action == "rollback":
            mv = rollback_model(s, args.actor)
            s.commit()
            print(f"rolled back; champion: {mv.id} {mv.name}")
        else:
            for m in model_history(s):
                when = m.promoted_at.strftime("%Y-%m-%d %H:%M") if m.promoted_at else "-"
                print(f"{m.id:4} {m.status:9} promoted {when:16} {m.name}")
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    from inspector.drift import run_drift_check

    settings = store_settings(args)
    with open_sessions(settings)() as s:
        events = run_drift_check(s, settings.drift)
    if not events:
        from inspector.store.monitoring import champion

        with open_sessions(settings)() as s:
            has_champion = champion(s) is not None
        print(
            f"nothing to check yet: no stream has {settings.drift.min_window} inspections by the champion"
            if has_champion
            else "nothing to check yet: no champion model (run the station or `inspector models promote`)"
        )
    for e in events:
        if args.all or e.severity != "ok":
            print(
                f"{e.severity.upper():5} {e.product_id}/{e.line or '-'} {e.metric:20} "
                f"{e.value:.4g} (threshold {e.threshold:.4g}, alarm {e.details['alarm_when']})"
            )
    alarms = sum(e.severity != "ok" for e in events)
    print(f"{len(events)} metrics checked, {alarms} above threshold")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from inspector.retrain import due_trigger, run_retrain

    settings = store_settings(args)
    yield_cpu_to_the_line(settings.train.nice)
    if args.data:
        settings.retrain.data = args.data
    sessions = open_sessions(settings)
    trigger = "manual" if args.now else due_trigger(settings, sessions)
    if trigger is None:
        print("no retrain due (use --now to force one)")
        return 0
    result = run_retrain(settings, sessions, trigger=trigger, actor=os.environ.get("USER", "cli"))
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    return 0 if result.status in ("finished", "skipped") else 1


def cmd_scheduler(args: argparse.Namespace) -> int:
    from inspector.scheduler import build_scheduler, scheduled_jobs

    settings = store_settings(args)
    if args.list:
        for j in scheduled_jobs(settings):
            print(f"{j['id']:18} next {j['next_run_time']}  {j['name']}")
        return 0
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    yield_cpu_to_the_line(settings.train.nice)  # its retraining must not take the line's cores
    sched = build_scheduler(settings, blocking=True)
    print("scheduler running (Ctrl-C stops it)")
    sched.start()
    return 0
