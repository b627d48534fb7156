"""Every store test runs on real SQLite and real PostgreSQL, schemas built by the migrations."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from inspector.store.migrate import upgrade
from inspector.store.session import make_engine, session_factory

ADMIN_URL = os.environ.get("INSPECTOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _postgres_admin():
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means no server
        engine.dispose()
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {ADMIN_URL} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}")
    return engine


@pytest.fixture
def fresh_db_url(request, tmp_path):
    """An empty database, dropped afterwards: SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = _postgres_admin()
    name = f"inspector_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # name is generated above, not user input
    yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def pytest_generate_tests(metafunc):
    if "fresh_db_url" in metafunc.fixturenames:
        metafunc.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db_url(fresh_db_url):
    upgrade(fresh_db_url)
    return fresh_db_url


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):
    return session_factory(engine)
