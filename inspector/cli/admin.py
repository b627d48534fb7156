"""Commands that keep the store: db (schema, retention), keys (API keys), users (dashboard users)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inspector.cli.common import EPILOG, add_store, command_settings, open_sessions, store_settings
from inspector.errors import InspectorError


def register(sub: argparse._SubParsersAction) -> None:
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
    db.set_defaults(handler=cmd_db)

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
    k.set_defaults(handler=cmd_keys)

    us = sub.add_parser(
        "users",
        help="dashboard users: add (or reset) one, or list them",
        epilog="The password is asked for on a terminal, else read as one line from standard input.",
    )
    us.add_argument("action", choices=["add", "list"])
    us.add_argument("name", nargs="?", help="add: the user name")
    us.add_argument("--role", choices=["operator", "engineer"], default="operator", help="add: the role")
    add_store(us)
    us.set_defaults(handler=cmd_users)


def cmd_db(args: argparse.Namespace) -> int:
    from inspector.store.migrate import current_revision, head_revision, upgrade
    from inspector.store.session import make_engine

    settings = command_settings(args)
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


def cmd_keys(args: argparse.Namespace) -> int:
    from inspector.store.keys import create_api_key, list_api_keys, revoke_api_key
    from inspector.store.migrate import upgrade
    from inspector.store.session import make_engine, session_factory

    url = args.url or command_settings(args).database_url
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
                    state = "revoked" if row.revoked_at else "active"
                    print(f"{row.name:20} {row.prefix}…  {state:8} lines: {', '.join(row.lines) or 'all'}")
    finally:
        engine.dispose()
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from inspector.services import create_user, list_users

    with open_sessions(store_settings(args))() as s:
        if args.action == "list":
            for u in list_users(s):
                print(f"{u.username:20} {u.role:9} {'active' if u.active else 'disabled'}")
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
