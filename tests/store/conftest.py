"""Every store test runs on real SQLite and real PostgreSQL, schemas built by the migrations."""

from __future__ import annotations

import pytest

from inspector.store.migrate import upgrade
from inspector.store.session import make_engine, session_factory
from tests.helpers.postgres import temporary_database


@pytest.fixture
def fresh_db_url(request, tmp_path):
    """An empty database, dropped afterwards: SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with temporary_database() as (url, _name):
        yield url


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
