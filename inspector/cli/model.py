"""Commands that build and judge models: train, eval, onboard, relabel, demo."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

from inspector.cli.common import (
    EPILOG,
    add_common,
    add_data,
    add_store,
    command_settings,
    open_sessions,
    store_settings,
)
from inspector.runtime import yield_cpu_to_the_line


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train one model on every product in the data, calibrate on held-out good parts, report test",
        description="Train the cross-modal classifier on the train split of every product and build "
        "each product's anomaly branch (memory bank of good patches, region type head); "
        "choose the epoch, views and deciding scores on val; set the verdict thresholds on a calibration "
        "split of good train parts that chose nothing else; print metrics on test; save the checkpoint.",
        epilog=EPILOG,
    )
    add_data(t)
    add_common(t)
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
    t.add_argument(
        "--target-frr",
        type=float,
        help="false-reject rate promised on good parts (default 0.01); a product's own: "
        "INSPECTOR_VERDICT__TARGET_FRR_BY_PRODUCT='{\"magnetic-tile\": 0.03}'",
    )
    t.add_argument("--json", type=Path, metavar="OUT", help="also write the model card (with metrics) here")
    t.set_defaults(handler=cmd_train)

    e = sub.add_parser(
        "eval", help="metrics of a saved model on a split, with the thresholds from its card", epilog=EPILOG
    )
    add_data(e)
    add_common(e)
    e.add_argument("--model", type=Path, help="checkpoint folder (default: <home>/models/current)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to score (default test)")
    e.add_argument("--json", type=Path, metavar="OUT", help="write the metrics as JSON here")
    e.set_defaults(handler=cmd_eval)

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
    add_store(ob)
    ob.set_defaults(handler=cmd_onboard)

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
    rl.set_defaults(handler=cmd_relabel)

    d = sub.add_parser(
        "demo", help="build the solar-cell demo, train, evaluate and inspect held-out cells", epilog=EPILOG
    )
    add_common(d)
    d.add_argument("--per-class", type=int, help="cap images per (product, class) for a quicker demo")
    d.add_argument("--epochs", type=int, help="maximum epochs (default 30)")
    d.set_defaults(handler=cmd_demo)


def cmd_train(args: argparse.Namespace) -> int:
    from inspector.report import metrics_table, threshold_basis
    from inspector.training import train_model

    s = command_settings(args)
    yield_cpu_to_the_line(s.train.nice)
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

    s = command_settings(args)
    model = args.model or s.default_model
    result = evaluate_checkpoint(s, model, args.data, args.split, args.product, progress=not args.quiet)
    for b in result.bad_rows[:10]:
        print(f"skipped {b}")
    print(metrics_table(result.metrics, f"{args.split} split"))
    if basis := threshold_basis(read_card(model), list(result.metrics)):
        print(f"\n{basis}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dataclasses.asdict(result), indent=2))
        print(f"wrote {args.json}")
    return 0


def cmd_onboard(args: argparse.Namespace) -> int:
    from inspector.onboard import onboard, register
    from inspector.report import percent, threshold_basis
    from inspector.store.monitoring import champion
    from models.export import read_card

    settings = store_settings(args)
    yield_cpu_to_the_line(settings.train.nice)
    base = args.model
    if base is None:
        with open_sessions(settings)() as s:
            champ = champion(s)
        base = Path(champ.artifact_path) if champ else settings.default_model
    result = onboard(settings, args.product, base, args.out, progress=not args.quiet)
    mv_id, name = register(settings, result.model_dir, not args.no_promote, os.environ.get("USER", "cli"))
    promise = "guaranteed" if result.guaranteed else "not guaranteed: too few good parts to calibrate on"
    # the station's bank holds every good image; each calibration image is scored by a bank built
    # without its fold (cross-fit), so none is held out of the bank itself
    share = f"all {result.good}" if result.calibration == result.good else f"{result.calibration} of them"
    print(
        f"{result.product}: bank from {result.good} good images, the threshold calibrated on {share}, each "
        f"scored by a bank built without it ({percent(settings.verdict.target_frr_of(result.product))} false-reject "
        f"promise {promise}), "
        f"{result.seconds:.0f} s"
    )
    if result.defects:
        print(f"defect images given: {result.caught} of {result.defects} rejected at the new threshold")
    if basis := threshold_basis(read_card(result.model_dir), [result.product]):
        print(basis)
    state = "promoted to champion: a running station inspects it within seconds" if not args.no_promote else "candidate"
    print(f"model {mv_id} {name} ({state}) in {result.model_dir}")
    return 0


def cmd_relabel(args: argparse.Namespace) -> int:
    import getpass

    from inspector.corrections import add_corrections

    for c in add_corrections(args.images, args.defect_type, args.by or getpass.getuser(), args.comment):
        print(f"{c.image}: {c.defect_type} (by {c.reviewer}, {c.created_at})")
    print("the next training or retraining on this data learns it")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from inspector.demo import run_demo
    from inspector.feature_memo import remember_patch_features

    settings = command_settings(args)
    with remember_patch_features(settings.anomaly.memo_mb):  # the retraining reuses the training's features
        return run_demo(settings, args.per_class, progress=not args.quiet)
