"""The ``inspector`` command line: train, eval, inspect, onboard, demo, serve, db, keys, models, drift, relabel,
retrain, scheduler, users."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from inspector.errors import InspectorError
from inspector.runtime import keep_freed_memory
from inspector.settings import Settings, get_settings

EPILOG = "Settings also come from INSPECTOR_* environment variables (see docs/configuration.md); options win."


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="working folder for models, caches and demo data (default: var)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: auto = cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_data(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument(
        "--data",
        type=Path,
        action="append",
        required=required,
        metavar="DIR",
        help="a product folder or a folder of product folders (manifest.csv or images/<defect_type>/, "
        "plus manual.md); repeat for several",
    )
    p.add_argument("--product", action="append", metavar="ID", help="only these products (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description="Visual quality inspection station.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser(
        "train",
        help="train one model on every product in the data, calibrate on held-out good parts, report test",
        description="Train the cross-modal classifier on the train split of every product and build "
        "each product's anomaly branch (memory bank of good patches, region type head); "
        "choose the epoch, views and deciding scores on val; set the verdict thresholds on a calibration "
        "split of good train parts that chose nothing else; print metrics on test; save the checkpoint.",
        epilog=EPILOG,
    )
    _add_data(t)
    _add_common(t)
    t.add_argument("--out", type=Path, help="checkpoint folder (default: <home>/models/current)")
    t.add_argument(
        "--backbone",
        help="image encoder: efficientnet_lite0 (default), efficientnet_lite1, efficientnet_lite2, dinov2_vits14",
    )
    t.add_argument("--fusion", help="concat, late, gated, cross_attention (default), low_rank")
    t.add_argument(
        "--text-source",
        choices=["manual", "ids"],
        help="manual (default) or ids: ablate the manual (image-only baseline)",
    )
    t.add_argument(
        "--mode",
        choices=["frozen", "finetune"],
        help="frozen (default): cached backbone features, fast on CPU; finetune: last stages learn",
    )
    t.add_argument("--trainable-stages", type=int, help="finetune mode: backbone stages that learn (default 2)")
    t.add_argument(
        "--finetune-views",
        type=int,
        help="finetune mode: the frozen stages' output cached for this many views per train image, so each "
        "step runs the learning stages only (default 2); 0 decodes and augments every image every epoch",
    )
    t.add_argument(
        "--input-size",
        type=int,
        help="classifier input side in px (default: the backbone's, 224); e.g. 128 for "
        "128-px crops at their native resolution",
    )
    t.add_argument(
        "--anomaly",
        nargs="+",
        metavar="EXTRACTOR@VIEW",
        help="anomaly-branch candidates (default efficientnet_lite0@auto and @fit320): the first stays "
        "unless another lets fewer defects through beyond chance on parts its bank never saw (val, train defects, "
        "held-out good train parts); views: @auto, @fit448, @scale1.0, each with +std to standardise grey levels; "
        "extractors: efficientnet_lite0, efficientnet_lite1, dinov2_vits14",
    )
    t.add_argument("--no-anomaly", action="store_true", help="no anomaly branch (classifier only)")
    t.add_argument("--no-classifier", action="store_true", help="no classifier (anomaly branch only)")
    t.add_argument("--bank-size", type=int, help="memory-bank patches per product at most (default 6000)")
    t.add_argument("--epochs", type=int, help="maximum epochs (default 30; early stopping on val)")
    t.add_argument("--batch-size", type=int, help="batch size (default 64)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument(
        "--views", type=int, help="frozen mode: cached views per train image, 1 clean + augmented (default 2)"
    )
    t.add_argument(
        "--heads", type=int, help="frozen mode: heads from different seeds, probabilities averaged (default 1)"
    )
    t.add_argument("--shots", type=int, help="use at most this many train images per (product, class)")
    t.add_argument("--target-frr", type=float, help="false-reject rate promised on good parts (default 0.01)")
    t.add_argument("--json", type=Path, metavar="OUT", help="also write the model card (with metrics) here")

    e = sub.add_parser(
        "eval", help="metrics of a saved model on a split, with the thresholds from its card", epilog=EPILOG
    )
    _add_data(e)
    _add_common(e)
    e.add_argument("--model", type=Path, help="checkpoint folder (default: <home>/models/current)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to score (default test)")
    e.add_argument("--json", type=Path, metavar="OUT", help="write the metrics as JSON here")

    i = sub.add_parser(
        "inspect",
        help="verdicts for images of one product",
        epilog=EPILOG,
        description="Print accept / review / reject for each image, the defect type in the manual's "
        "words and the confidence. Unreadable images are reported and skipped.",
    )
    _add_common(i)
    i.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    i.add_argument("--product", required=True, metavar="ID", help="the product the images show")
    i.add_argument("--model", type=Path, help="checkpoint folder (default: <home>/models/current)")
    i.add_argument("--manual", type=Path, help="use this manual.md for the product instead of the one in the model")
    i.add_argument("--no-manual", action="store_true", help="ignore the manual: image-only verdicts")
    i.add_argument("--json", action="store_true", help="one JSON object per image instead of text")
    i.add_argument(
        "--record",
        action="store_true",
        help="store images and verdicts in the database (INSPECTOR_DATABASE_URL, else <home>/inspector.db)",
    )
    i.add_argument("--line", default="", help="with --record: the line the images came from")
    i.add_argument("--station", default="", help="with --record: the station")

    d = sub.add_parser(
        "demo", help="build the solar-cell demo, train, evaluate and inspect held-out cells", epilog=EPILOG
    )
    _add_common(d)
    d.add_argument("--per-class", type=int, help="cap images per (product, class) for a quicker demo")
    d.add_argument("--epochs", type=int, help="maximum epochs (default 30)")
    sv = sub.add_parser(
        "serve",
        help="run the inspection station: HTTP, hot folder, camera, MQTT; every verdict stored",
        description="Run the station. Settings come from --config (TOML, see docs/service.md), then "
        "INSPECTOR_* variables; the options below override both.",
        epilog=EPILOG,
    )
    _add_common(sv)
    sv.add_argument("--config", type=Path, help="TOML settings file ([service], [service.camera], [model], ...)")
    sv.add_argument(
        "--model",
        type=Path,
        help="checkpoint folder; it becomes the champion (default: the champion in the database, else "
        "<home>/models/current). The station switches to any model promoted later.",
    )
    sv.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, help="HTTP port (default 8080)")
    sv.add_argument("--line", help="line name recorded with every verdict")
    sv.add_argument("--station", help="station name recorded with every verdict")
    sv.add_argument("--watch", type=Path, help="hot folder: inspect images dropped into WATCH/<product>/")
    sv.add_argument("--max-batch", type=int, help="images per model batch at most (default 32)")
    sv.add_argument("--max-wait-ms", type=float, help="wait this long to fill a batch (default 10)")
    sv.add_argument("--queue-size", type=int, help="queued images before HTTP answers 503 (default 256)")
    sv.add_argument("--decode-threads", type=int, help="image decode threads (default: cores, at most 8)")
    sv.add_argument("--mqtt-host", help="publish every verdict to this MQTT broker (e.g. 127.0.0.1)")
    sv.add_argument("--mqtt-port", type=int, help="MQTT broker port (default 1883)")
    sv.add_argument(
        "--camera", metavar="SOURCE", help="OpenCV source: device index, rtsp:// or http:// URL, video file"
    )
    sv.add_argument("--camera-product", metavar="ID", help="product the camera sees (required with --camera)")
    sv.add_argument(
        "--camera-mode",
        choices=["interval", "trigger"],
        help="interval: every Nth frame (default); trigger: one frame per MQTT message on "
        "inspector/<line>/<station>/trigger",
    )
    sv.add_argument("--camera-every-n", type=int, help="interval mode: inspect every Nth frame (default 1)")
    sv.add_argument("--camera-rate", type=float, help="interval mode: at most this many frames per second")
    sv.add_argument(
        "--opcua",
        metavar="ENDPOINT",
        help="serve PLCs over OPC UA here, e.g. opc.tcp://0.0.0.0:4840/inspector (store users sign in)",
    )
    sv.add_argument(
        "--sparkplug-group", metavar="GROUP", help="publish Sparkplug B under this group (needs --mqtt-host)"
    )
    sv.add_argument("--product", help="the PLC handshake's active recipe (a PLC changes it with ActivateRecipe)")
    sv.add_argument("--inspect-window-ms", type=float, help="PLC handshake: later results are fail-safe rejects (100)")

    sl = sub.add_parser(
        "simulate-line",
        help="act as the PLC over OPC UA: trigger parts from a folder at a set rate and report latency",
        description="Drive a running station's OPC UA handshake like a PLC: parts from FOLDER (a product "
        "folder with labels, or any folder of images) at --rate per second, bounded by --count and "
        "--seconds. Prints trigger->result latency percentiles, timeouts, refused and lost triggers, and "
        "results that disagree with the labels.",
        epilog=EPILOG,
    )
    sl.add_argument("folder", type=Path)
    sl.add_argument("--endpoint", default="opc.tcp://127.0.0.1:4840/inspector")
    sl.add_argument("--user", help="a store user (inspector users add); the password from INSPECTOR_PLC_PASSWORD")
    sl.add_argument("--product", help="activate this recipe first")
    sl.add_argument("--rate", type=float, default=20.0, help="parts per second (default 20)")
    sl.add_argument("--count", type=int, default=1000, help="parts at most (default 1000)")
    sl.add_argument("--seconds", type=float, default=600.0, help="seconds at most (default 600)")
    sl.add_argument("--cycle-ms", type=float, default=5.0,
                    help="how often the PLC reads Ready and ResultValid, its scan cycle (default 5)")  # fmt: skip
    sl.add_argument("--json", action="store_true", help="print the report as JSON")

    k = sub.add_parser(
        "keys",
        help="API keys for line integrations (HTTP X-API-Key header)",
        epilog=EPILOG,
        description="With no active key the HTTP API is open; once a key exists every request "
        "needs one. A key scoped with --line may only report for those lines.",
    )
    k.add_argument("action", choices=["add", "list", "revoke"])
    k.add_argument("name", nargs="?", help="key name (add, revoke)")
    k.add_argument("--line", action="append", help="add: lines this key may report for (repeatable; default all)")
    k.add_argument("--home", type=Path, help="working folder (default: var)")
    k.add_argument("--url", help="database URL (default: INSPECTOR_DATABASE_URL or the SQLite file under home)")

    db = sub.add_parser(
        "db",
        help="database schema: upgrade to the latest migration, or show the current one",
        epilog="The database is INSPECTOR_DATABASE_URL, else SQLite at <home>/inspector.db.",
    )
    db.add_argument(
        "action",
        choices=["upgrade", "current", "retention", "reconcile"],
        help="upgrade: apply migrations; current: show the revision; retention: delete images of ok "
        "verdicts older than --keep-days (defects, reviewed and golden images stay); reconcile: "
        "remove image files that no inspection references (left by a crash)",
    )
    db.add_argument("--keep-days", type=int, default=30, help="retention: days to keep ok images (default 30)")
    db.add_argument("--home", type=Path, help="working folder (default: var)")
    db.add_argument("--url", help="database URL (default: INSPECTOR_DATABASE_URL or the SQLite file under home)")
    m = sub.add_parser(
        "models",
        help="model versions: list them, promote one to champion, roll back to the previous champion",
        epilog=EPILOG,
        description="The champion serves the line; a running station switches to a new champion within seconds.",
    )
    m.add_argument("action", choices=["list", "promote", "rollback"])
    m.add_argument("id", nargs="?", type=int, help="promote: the model version id (see `inspector models list`)")
    m.add_argument("--actor", default=os.environ.get("USER", "cli"), help="who is acting (audit log)")
    _add_store(m)

    dr = sub.add_parser(
        "drift",
        help="check production against the champion's reference now; write and print drift events",
        epilog=EPILOG,
    )
    dr.add_argument("action", choices=["check"])
    dr.add_argument("--all", action="store_true", help="print every metric, not only warnings and alarms")
    _add_store(dr)

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
    _add_store(rt)

    ob = sub.add_parser(
        "onboard",
        help="add a product from its manual and good images to the model; the station takes it up at once",
        epilog=EPILOG,
        description="Build a memory bank of the product's good images and calibrate its reject threshold on "
        "good images held out of the bank, in a copy of the model; record it in the database and promote it, "
        "so a running station inspects the product within seconds. Defect images are optional: any part "
        "unlike the good ones is rejected; given ones are only counted.",
    )
    ob.add_argument(
        "--product",
        type=Path,
        required=True,
        metavar="DIR",
        help="product folder: manual.md and images/ok/* (at least 10), optionally images/<defect_type>/* or a "
        "manifest.csv",
    )
    ob.add_argument("--model", type=Path, help="model to add it to (default: the champion, else <home>/models/current)")
    ob.add_argument(
        "--out", type=Path, help="folder of the new model (default: <home>/models/onboard-<product>-<time>)"
    )
    ob.add_argument("--no-promote", action="store_true", help="record the new model as a candidate, do not promote")
    ob.add_argument("--device", help="cpu, cuda or auto")
    ob.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_store(ob)

    us = sub.add_parser(
        "users",
        help="dashboard users: add (or reset) one, or list them",
        epilog="The password is asked for on a terminal, else read as one line from standard input.",
    )
    us.add_argument("action", choices=["add", "list"])
    us.add_argument("name", nargs="?", help="add: the user name")
    us.add_argument("--role", choices=["operator", "engineer"], default="operator", help="add: the role")
    _add_store(us)

    rl = sub.add_parser(
        "relabel",
        help="correct the label of training images (corrections.csv beside the data; the next training learns it)",
        epilog="The source's labels are never edited. inspector train, eval and onboard name the good "
        "calibration parts each reject threshold stands on: look at them before trusting the promise.",
    )
    rl.add_argument("images", nargs="+", type=Path, help="images inside a product folder (one with a manual.md)")
    rl.add_argument(
        "--as", dest="defect_type", required=True, metavar="TYPE", help="ok, or a defect type of the manual"
    )
    rl.add_argument("--by", help="who decided (default: the login name)")
    rl.add_argument("--comment", default="", help="why, in a few words")

    sc = sub.add_parser(
        "scheduler",
        help="run the scheduled jobs: drift checks, retrain triggers, nightly retrain (until Ctrl-C)",
        epilog=EPILOG,
    )
    sc.add_argument("--list", action="store_true", help="only list the stored jobs and their next run times")
    _add_store(sc)
    return parser


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="working folder (default: var)")
    p.add_argument("--url", help="database URL (default: INSPECTOR_DATABASE_URL or the SQLite file under home)")


def _settings(args: argparse.Namespace) -> Settings:
    return _apply(get_settings().model_copy(deep=True), args)


def _apply(s: Settings, args: argparse.Namespace) -> Settings:
    """Command-line options over ``s``."""
    if getattr(args, "home", None):
        s.home = args.home
    if getattr(args, "device", None):
        s.model.device = args.device
    for opt, (group, field) in {
        "backbone": ("model", "backbone"),
        "fusion": ("model", "fusion"),
        "text_source": ("model", "text_source"),
        "mode": ("train", "mode"),
        "trainable_stages": ("train", "trainable_stages"),
        "finetune_views": ("train", "finetune_views"),
        "input_size": ("model", "input_size"),
        "anomaly": ("anomaly", "candidates"),
        "bank_size": ("anomaly", "bank_size"),
        "epochs": ("train", "epochs"),
        "batch_size": ("train", "batch_size"),
        "lr": ("train", "lr"),
        "seed": ("train", "seed"),
        "views": ("train", "views"),
        "heads": ("train", "heads"),
        "target_frr": ("verdict", "target_frr"),
    }.items():
        value = getattr(args, opt, None)
        if value is not None:
            setattr(getattr(s, group), field, value)
    if getattr(args, "no_anomaly", False):
        s.anomaly.enabled = False
    if getattr(args, "no_classifier", False):
        s.model.classifier = False
    return s


def cmd_train(args: argparse.Namespace) -> int:
    from inspector.report import metrics_table, threshold_basis
    from inspector.training import train_model

    s = _settings(args)
    out = args.out or s.default_model
    card = train_model(s, args.data, out, args.product, args.shots, progress=not args.quiet)
    if card.data["bad_count"]:
        print(f"skipped {card.data['bad_count']} unusable rows:", *card.data["bad_rows"][:10], sep="\n  ")
    print(metrics_table(card.metrics["val"], "val (chose the epoch, parts and scales; not the thresholds)"))
    if card.metrics.get("test"):
        print()
        print(metrics_table(card.metrics["test"], "test (held out)", legend=True))
    if basis := threshold_basis(card):
        print(f"\n{basis}")
    print(f"\nsaved {out}")
    if args.json:
        args.json.write_text(card.to_json())
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from inspector.report import metrics_table, threshold_basis
    from inspector.training import evaluate_checkpoint
    from models.export import read_card

    s = _settings(args)
    model = args.model or s.default_model
    result = evaluate_checkpoint(s, model, args.data, args.split, args.product, progress=not args.quiet)
    for b in result["bad_rows"][:10]:
        print(f"skipped {b}")
    print(metrics_table(result["metrics"], f"{args.split} split"))
    if basis := threshold_basis(read_card(model), list(result["metrics"])):
        print(f"\n{basis}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from inspector.engine import Engine
    from inspector.manual import load_manual
    from inspector.report import verdict_line

    s = _settings(args)
    engine = Engine(args.model or s.default_model, s.model.device, s.max_image_pixels, s.cache_dir)
    if args.no_manual:
        engine.set_manual(args.product, None)
    elif args.manual:
        engine.set_manual(args.product, load_manual(args.manual, args.product))
    results = engine.inspect_files(args.product, args.images)
    if args.record:
        from inspector.recorder import Capture, open_recorder

        recorder = open_recorder(s, engine)
        captures = [
            Capture(str(p), p.read_bytes() if p.is_file() else None, line=args.line, station=args.station)
            for p in args.images
        ]
        recorder.record(args.product, captures, results)
        print(f"recorded {len(captures)} inspections in {s.database_url}", file=sys.stderr)
    failed = 0
    for path, v in zip(args.images, results, strict=True):
        if isinstance(v, Exception):
            failed += 1
            msg = str(v) if isinstance(v, InspectorError) else f"{path}: {type(v).__name__}: {v}"
            print(json.dumps({"image": str(path), "error": msg}) if args.json else f"ERROR   {msg}")
        elif args.json:
            print(json.dumps({"image": str(path), **v.to_dict()}))
        else:
            print(verdict_line(str(path), v))
    return 1 if failed == len(args.images) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from inspector.anomaly_fit import remember_patch_features
    from inspector.demo import run_demo

    settings = _settings(args)
    with remember_patch_features(settings.anomaly.memo_mb):  # the retraining reuses the training's features
        return run_demo(settings, args.per_class, progress=not args.quiet)


def cmd_serve(args: argparse.Namespace) -> int:
    from inspector.service.app import serve
    from inspector.settings import CameraSettings, OpcUaSettings, SparkplugSettings, load_settings

    s = _settings(args) if not args.config else _apply(load_settings(args.config), args)
    svc = s.service
    for opt in (
        "host",
        "port",
        "line",
        "station",
        "watch",
        "max_batch",
        "max_wait_ms",
        "queue_size",
        "decode_threads",
        "mqtt_host",
        "mqtt_port",
    ):
        if getattr(args, opt) is not None:
            setattr(svc, opt, getattr(args, opt))
    if args.camera:
        if not args.camera_product:
            raise InspectorError("--camera needs --camera-product")
        svc.camera = CameraSettings(source=args.camera, product=args.camera_product)
    if svc.camera:
        for opt, field in (("camera_mode", "mode"), ("camera_every_n", "every_n"), ("camera_rate", "rate")):
            if getattr(args, opt) is not None:
                setattr(svc.camera, field, getattr(args, opt))
    if args.opcua:
        svc.opcua = (svc.opcua or OpcUaSettings()).model_copy(update={"endpoint": args.opcua})
    if args.sparkplug_group:
        svc.sparkplug = (svc.sparkplug or SparkplugSettings()).model_copy(update={"group": args.sparkplug_group})
    if args.product:
        svc.handshake.product = args.product
    if args.inspect_window_ms:
        svc.handshake.window_ms = args.inspect_window_ms
    serve(s, args.model)
    return 0


def cmd_simulate_line(args: argparse.Namespace) -> int:
    import json
    import os

    from inspector.simulate import simulate_line

    r = simulate_line(args.endpoint, args.folder, args.rate, args.count, args.seconds, args.user,
                      os.environ.get("INSPECTOR_PLC_PASSWORD"), args.product, cycle_ms=args.cycle_ms)  # fmt: skip
    if args.json:
        print(json.dumps(r.to_dict(), indent=2))
        return 0
    lat = r.latency_ms
    print(f"{r.parts} parts in {r.seconds:.1f} s ({r.rate_achieved:.1f}/s of {r.rate_wanted:g}/s wanted; "
          f"{r.behind} triggered late because the previous cycle had not ended)")  # fmt: skip
    if lat:
        print(
            f"trigger -> ResultValid: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
            f"max {lat['max']} ms"
        )
    print(f"results {r.results}, timeouts (fail-safe rejects, code 101) {r.timeouts}, lost {r.lost}, "
          f"refused {r.refused or 0}; verdicts {r.verdicts}")  # fmt: skip
    if r.fault_after_parts is not None:
        print(f"the station went to Fault after {r.fault_after_parts} parts (late results in a row): the line stopped")
    if r.labelled:
        print(f"against the labels of {r.labelled} parts: {r.escapes} defects accepted (escapes), "
              f"{r.false_rejects} good parts not accepted")  # fmt: skip
    return 0 if not r.lost else 1


def cmd_keys(args: argparse.Namespace) -> int:
    from inspector.store.keys import create_api_key, list_api_keys, revoke_api_key
    from inspector.store.migrate import upgrade
    from inspector.store.session import make_engine, session_factory

    url = args.url or _settings(args).database_url
    if args.action != "list" and not args.name:
        raise InspectorError(f"keys {args.action} needs a NAME")
    upgrade(url)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            if args.action == "add":
                key = create_api_key(s, args.name, args.line)
                s.commit()
                print(f"{key}\n(shown once: store it in the line's configuration)")
            elif args.action == "revoke":
                revoke_api_key(s, args.name)
                s.commit()
                print(f"revoked {args.name}")
            else:
                for row in list_api_keys(s):
                    state = "revoked" if row["revoked_at"] else "active"
                    print(f"{row['name']:20} {row['prefix']}…  {state:8} lines: {', '.join(row['lines']) or 'all'}")
    finally:
        engine.dispose()
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from inspector.store.migrate import current_revision, head_revision, upgrade
    from inspector.store.session import make_engine

    settings = _settings(args)
    url = args.url or settings.database_url
    engine = make_engine(url)
    try:
        if args.action in ("retention", "reconcile"):
            from inspector.store.files import ImageStore, apply_retention, reconcile
            from inspector.store.session import session_factory

            store = ImageStore(settings.images_dir)
            with session_factory(engine)() as session:
                if args.action == "retention":
                    print(f"deleted {apply_retention(session, store, args.keep_days)} image files")
                else:
                    print(f"removed {reconcile(session, store)} orphaned image files")
            return 0
        if args.action == "upgrade":
            upgrade(url)
        current, head = current_revision(engine), head_revision(url)
    finally:
        engine.dispose()
    state = "up to date" if current == head else f"behind head {head}: run `inspector db upgrade`"
    print(f"{engine.url.render_as_string(hide_password=True)}: revision {current or 'none'} ({state})")
    return 0


def _store_settings(args: argparse.Namespace) -> Settings:
    s = _settings(args)
    if getattr(args, "url", None):
        s.database_url_override = args.url
    from inspector.store.migrate import upgrade

    upgrade(s.database_url)
    return s


def _sessions(s: Settings):
    from inspector.store.session import make_engine, session_factory

    return session_factory(make_engine(s.database_url))


def cmd_models(args: argparse.Namespace) -> int:
    from inspector.store.queries import model_history
    from inspector.store.repo import promote_model
    from inspector.store.retraining import rollback_model

    with _sessions(_store_settings(args))() as s:
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

    settings = _store_settings(args)
    with _sessions(settings)() as s:
        events = run_drift_check(s, settings.drift)
    if not events:
        from inspector.store.monitoring import champion

        with _sessions(settings)() as s:
            has_champion = champion(s) is not None
        print(
            f"nothing to check yet: no stream has {settings.drift.min_window} inspections by the champion"
            if has_champion
            else "nothing to check yet: no champion model (run the station or `inspector models promote`)"
        )
    for e in events:
        if args.all or e["severity"] != "ok":
            print(
                f"{e['severity'].upper():5} {e['product_id']}/{e['line'] or '-'} {e['metric']:20} "
                f"{e['value']:.4g} (threshold {e['threshold']:.4g}, alarm {e['details']['alarm_when']})"
            )
    alarms = sum(e["severity"] != "ok" for e in events)
    print(f"{len(events)} metrics checked, {alarms} above threshold")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from inspector.retrain import due_trigger, run_retrain

    settings = _store_settings(args)
    if args.data:
        settings.retrain.data = args.data
    sessions = _sessions(settings)
    trigger = "manual" if args.now else due_trigger(settings, sessions)
    if trigger is None:
        print("no retrain due (use --now to force one)")
        return 0
    result = run_retrain(settings, sessions, trigger=trigger, actor=os.environ.get("USER", "cli"))
    print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    return 0 if result.status in ("finished", "skipped") else 1


def cmd_onboard(args: argparse.Namespace) -> int:
    from inspector.onboard import onboard, register
    from inspector.report import threshold_basis
    from inspector.store.monitoring import champion
    from models.export import read_card

    settings = _store_settings(args)
    base = args.model
    if base is None:
        with _sessions(settings)() as s:
            champ = champion(s)
        base = Path(champ["artifact_path"]) if champ else settings.default_model
    result = onboard(settings, args.product, base, args.out, progress=not args.quiet)
    mv_id, name = register(settings, result.model_dir, not args.no_promote, os.environ.get("USER", "cli"))
    promise = "guaranteed" if result.guaranteed else "not guaranteed: too few good parts to calibrate on"
    # the station's bank holds every good image; each calibration image is scored by a bank built
    # without its fold (cross-fit), so none is held out of the bank itself
    share = f"all {result.good}" if result.calibration == result.good else f"{result.calibration} of them"
    print(
        f"{result.product}: bank from {result.good} good images, the threshold calibrated on {share}, each "
        f"scored by a bank built without it ({settings.verdict.target_frr:.0%} false-reject promise {promise}), "
        f"{result.seconds:.0f} s"
    )
    if result.defects:
        print(f"defect images given: {result.caught} of {result.defects} rejected at the new threshold")
    if basis := threshold_basis(read_card(result.model_dir), [result.product]):
        print(basis)
    state = "promoted to champion: a running station inspects it within seconds" if not args.no_promote else "candidate"
    print(f"model {mv_id} {name} ({state}) in {result.model_dir}")
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from inspector.services import create_user, list_users

    with _sessions(_store_settings(args))() as s:
        if args.action == "list":
            for u in list_users(s):
                print(f"{u['username']:20} {u['role']:9} {'active' if u['active'] else 'disabled'}")
            return 0
        if not args.name:
            raise InspectorError("users add needs a NAME")
        if sys.stdin.isatty():
            import getpass

            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                raise InspectorError("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        create_user(s, args.name, password, args.role)
        s.commit()
    print(f"user {args.name} ({args.role}) saved")
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    import getpass

    from inspector.corrections import add_corrections

    for c in add_corrections(args.images, args.defect_type, args.by or getpass.getuser(), args.comment):
        print(f"{c.image}: {c.defect_type} (by {c.reviewer}, {c.created_at})")
    print("the next training or retraining on this data learns it")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from inspector.scheduler import build_scheduler, scheduled_jobs

    settings = _store_settings(args)
    if args.list:
        for j in scheduled_jobs(settings):
            print(f"{j['id']:18} next {j['next_run_time']}  {j['name']}")
        return 0
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sched = build_scheduler(settings, blocking=True)
    print("scheduler running (Ctrl-C stops it)")
    sched.start()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    from pydantic import ValidationError
    from sqlalchemy.exc import OperationalError

    from models import CardError, WeightsUnavailableError
    from models.registry import UnknownNameError

    handler = {
        "train": cmd_train,
        "eval": cmd_eval,
        "inspect": cmd_inspect,
        "demo": cmd_demo,
        "db": cmd_db,
        "serve": cmd_serve,
        "keys": cmd_keys,
        "models": cmd_models,
        "drift": cmd_drift,
        "retrain": cmd_retrain,
        "scheduler": cmd_scheduler,
        "users": cmd_users,
        "relabel": cmd_relabel,
        "onboard": cmd_onboard,
        "simulate-line": cmd_simulate_line,
    }[args.command]
    try:
        return handler(args)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    except (
        CardError,
        FileNotFoundError,
        WeightsUnavailableError,
        UnknownNameError,
        ValidationError,
        OperationalError,
    ) as exc:
        print(f"inspector: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
