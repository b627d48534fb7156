"""PostgreSQL goes away mid-run: verdicts wait and are retried, none lost, the service keeps serving."""

import time

from sqlalchemy import create_engine, func, select, text

from inspector.service.app import build_service
from inspector.service.spool import Job
from inspector.settings import Settings
from inspector.store import Inspection
from tests.helpers.postgres import ADMIN_URL, temporary_database
from tests.service.conftest import png_bytes


def _station(tmp_path, trained_model, url):
    settings = Settings(home=tmp_path, INSPECTOR_DATABASE_URL=url)
    settings.model.device = "cpu"
    service = build_service(settings, trained_model, max_batch=4, max_wait_ms=20)
    service.worker.db_retry_s = 0.2
    return service


def _allow_connections(admin, name: str, allowed: bool) -> None:
    """Open or close the database; closing also ends every session already connected."""
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})


def _stored(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Inspection))
    engine.dispose()
    return count


def test_database_outage_delays_but_loses_nothing(tmp_path, trained_model):
    with temporary_database() as (url, name):
        service = _station(tmp_path, trained_model, url)
        service.worker.start()
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            first = [service.worker.submit(Job(id=f"a{i}", product="washer"), png_bytes("ok", i)) for i in range(3)]
            assert all(f.result(60).verdict != "error" for f in first)
            _allow_connections(admin, name, False)  # the database goes away
            during = [service.worker.submit(Job(id=f"b{i}", product="washer"), png_bytes("spot", i)) for i in range(5)]
            time.sleep(2)
            assert not any(f.done() for f in during)  # not answered before they are stored
            assert len(service.worker.spool) == 5 and not service.ready()[0]
            _allow_connections(admin, name, True)  # and comes back
            assert all(f.result(60).verdict != "error" for f in during)
            assert service.worker.metrics.db_errors._value.get() > 0
            # what the next PLC window is told storing takes: not the outage's seconds
            assert service.worker.store_seconds < 1.0
        finally:
            service.worker.stop()
            admin.dispose()
        assert _stored(url) == 8
        service.db_engine.dispose()


def test_http_keeps_accepting_with_api_keys_while_the_database_is_down(tmp_path, trained_model):
    """The key check cannot read the database either: it keeps the keys it last read."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from inspector.service.app import asgi_app
    from inspector.store.keys import create_api_key
    from inspector.store.session import session_factory

    with temporary_database() as (url, name):
        service = _station(tmp_path, trained_model, url)
        with session_factory(service.db_engine)() as s:
            key = create_api_key(s, "plc", ["L1"])
            s.commit()
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

        def post(i: int):
            headers = {"Content-Type": "image/png", "X-API-Key": key}
            return client.post("/v1/inspect?product=washer&line=L1", content=png_bytes("ok", i), headers=headers)

        try:
            with TestClient(asgi_app(service)) as client, ThreadPoolExecutor(4) as pool:
                assert post(0).status_code == 200  # the keys are read once while the database is up
                _allow_connections(admin, name, False)
                during = [pool.submit(post, i) for i in range(1, 4)]
                time.sleep(2)
                assert not any(f.done() for f in during)  # accepted, waiting to be stored
                assert len(service.worker.spool) == 3
                _allow_connections(admin, name, True)
                assert [f.result(60).status_code for f in during] == [200, 200, 200]
                assert post(9).status_code == 200
        finally:
            admin.dispose()
        assert _stored(url) == 5
        service.db_engine.dispose()
