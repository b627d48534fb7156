"""What every command shares: the common options, settings from options over the environment, the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspector.settings import Settings, get_settings

EPILOG = "Settings also come from INSPECTOR_* environment variables (see docs/configuration.md); options win."


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="working folder for models, caches and demo data (default: var)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: auto = cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_data(p: argparse.ArgumentParser, required: bool = True) -> None:
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


def add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", type=Path, help="working folder (default: var)")
    p.add_argument("--url", help="database URL (default: INSPECTOR_DATABASE_URL or the SQLite file under home)")


def command_settings(args: argparse.Namespace) -> Settings:
    return apply_options(get_settings().model_copy(deep=True), args)


def apply_options(s: Settings, args: argparse.Namespace) -> Settings:
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


def store_settings(args: argparse.Namespace) -> Settings:
    s = command_settings(args)
    if getattr(args, "url", None):
        s.database_url_override = args.url
    from inspector.store.migrate import upgrade

    upgrade(s.database_url)
    return s


def open_sessions(s: Settings):
    from inspector.store.session import make_engine, session_factory

    return session_factory(make_engine(s.database_url))
