"""Engines and sessions. SQLite is the embedded default; PostgreSQL is the scale-out path
(several stations writing into one database)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError as DatabaseError  # noqa: F401 - what callers outside the store catch
from sqlalchemy.orm import Session, sessionmaker

from inspector.errors import InspectorError


class StoreError(InspectorError):
    pass


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer on the line
    cur.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss mid-checkpoint
    cur.execute("PRAGMA busy_timeout=10000")  # wait for a lock instead of failing 'database is locked'
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str, **kwargs) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises several types for a bad URL
        raise StoreError(f"database URL '{url}' is not valid: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(f"database URL '{url}': only sqlite:/// and postgresql+psycopg:// are supported")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
