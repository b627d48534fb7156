"""The ``inspector`` command line. Each module registers its commands and their handlers:
model (train, eval, onboard, relabel, demo), line (inspect, serve, simulate-line),
lifecycle (models, drift, retrain, scheduler), admin (db, keys, users)."""

from __future__ import annotations

import argparse
import sys

from inspector.cli import admin, lifecycle, line, model
from inspector.cli.common import EPILOG
from inspector.errors import InspectorError
from inspector.runtime import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inspector", description="Visual quality inspection station.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (model, line, lifecycle, admin):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import OperationalError

    from models import CardError, WeightsUnavailableError
    from models.registry import UnknownNameError

    try:
        return args.handler(args)
    except InspectorError as exc:
        print(f"inspector: error: {exc}", file=sys.stderr)
        return 2
    except (
        CardError,
        FileNotFoundError,
        WeightsUnavailableError,
        UnknownNameError,
        ValidationError,
        SettingsError,  # an environment variable that is not the JSON its setting takes
        OperationalError,
    ) as exc:
        print(f"inspector: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
