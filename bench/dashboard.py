"""Dashboard benchmark: render time of every page with many inspections in PostgreSQL (goal: each
page <= 1 s with 1,000,000 inspections). Pages are rendered by streamlit.testing's AppTest
(the script and every query run; no browser paint), with the query cache cleared before each
render, so every number is a cold render. Prints JSON.

    python bench/dashboard.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from bench.store import ADMIN, load  # noqa: E402
from inspector.services import Account  # noqa: E402
from inspector.store.migrate import upgrade  # noqa: E402
from inspector.store.session import make_engine, session_factory  # noqa: E402

PAGES = ["overview", "inspections", "review", "drift", "models", "products"]


def render_times(repeats: int) -> dict:
    out = {}
    for name in PAGES:
        times = []
        for _ in range(repeats + 1):
            st.cache_data.clear()
            at = AppTest.from_file(str(ROOT / "dashboard" / "pages" / f"{name}.py"), default_timeout=60)
            at.session_state["user"] = Account("bench", "engineer")
            t0 = time.perf_counter()
            at.run()
            times.append((time.perf_counter() - t0) * 1000)
            assert not at.exception, at.exception
        out[name] = {"median_ms": round(statistics.median(times[1:]), 1), "max_ms": round(max(times[1:]), 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    name = f"inspector_dash_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        engine = make_engine(url)
        insert = load(session_factory(engine), args.rows)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        engine.dispose()
        os.environ["INSPECTOR_DATABASE_URL"] = url
        result = {"rows": args.rows, "insert_rows_per_s": insert["rows_per_s"], "pages": render_times(args.repeats)}
    finally:
        st.cache_resource.clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
