"""``inspector-dashboard``: run the Streamlit dashboard against the station's database."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="inspector-dashboard",
        description="Run the dashboard (Streamlit) on the station's database. Users: `inspector users add`.",
    )
    ap.add_argument("--home", type=Path, help="the station's working folder (default: INSPECTOR_HOME or var)")
    ap.add_argument("--url", help="database URL (default: INSPECTOR_DATABASE_URL or the SQLite file under home)")
    ap.add_argument("--port", type=int, default=8501, help="HTTP port (default 8501)")
    ap.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)",
    )
    args = ap.parse_args(argv)
    env = dict(os.environ)
    if args.home:
        env["INSPECTOR_HOME"] = str(args.home.resolve())
    if args.url:
        env["INSPECTOR_DATABASE_URL"] = args.url
    from inspector.settings import Settings
    from inspector.store.migrate import upgrade

    os.environ.update(env)
    upgrade(Settings().database_url)  # an empty or older database gets its tables first
    print(f"dashboard on http://localhost:{args.port}  (Ctrl-C stops it)", flush=True)
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(args.port)]
    cmd += ["--server.address", args.address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    cmd += ["--client.toolbarMode", "minimal"]
    os.execvpe(sys.executable, cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
