"""Commands that inspect parts: inspect (files), serve (the station), simulate-line (a PLC)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from inspector.cli.common import EPILOG, add_common, apply_options, command_settings
from inspector.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser(
        "inspect",
        help="verdicts for images of one product",
        epilog=EPILOG,
        description="Print accept / review / reject for each image, the defect type in the manual's "
        "words and the confidence. Unreadable images are reported and skipped.",
    )
    add_common(i)
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
    i.set_defaults(handler=cmd_inspect)

    sv = sub.add_parser(
        "serve",
        help="run the inspection station: HTTP, hot folder, camera, MQTT; every verdict stored",
        description="Run the station. Settings come from --config (TOML, see docs/service.md), then "
        "INSPECTOR_* variables; the options below override both.",
        epilog=EPILOG,
    )
    add_common(sv)
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
    sv.add_argument(
        "--model-threads",
        type=int,
        help="threads the model runs on (default: every core, but one where a PLC drives the station over OPC UA)",
    )
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
    sv.set_defaults(handler=cmd_serve)

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
    sl.set_defaults(handler=cmd_simulate_line)


def cmd_inspect(args: argparse.Namespace) -> int:
    from inspector.engine import Engine
    from inspector.manual import load_manual
    from inspector.report import verdict_line

    s = command_settings(args)
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


def cmd_serve(args: argparse.Namespace) -> int:
    from inspector.service.app import serve
    from inspector.settings import CameraSettings, OpcUaSettings, SparkplugSettings, load_settings

    s = command_settings(args) if not args.config else apply_options(load_settings(args.config), args)
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
        "model_threads",
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
