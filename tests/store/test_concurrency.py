"""Several writers and readers at once, as on a line: no 'database is locked', no lost rows."""

import multiprocessing as mp
import sqlite3
import threading
from contextlib import closing

from sqlalchemy import func, select

from inspector.store import Inspection
from inspector.store.migrate import upgrade
from inspector.store.queries import InspectionFilter, list_inspections, rates
from inspector.store.repo import count_inspections, ensure_product, record_inspections
from inspector.store.session import make_engine, session_factory
from tests.helpers.factories import inspection_rows

BATCHES, BATCH = 40, 50


def _write(url: str, seed: int) -> None:
    engine = make_engine(url)
    Session = session_factory(engine)
    rows = inspection_rows(BATCHES * BATCH, seed=seed)
    for i in range(BATCHES):
        with Session() as s:
            record_inspections(s, rows[i * BATCH : (i + 1) * BATCH])
            s.commit()
    engine.dispose()


def test_writer_and_readers_together(db_url, Session):
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        s.commit()
    errors: list[BaseException] = []
    done = threading.Event()

    def read():
        try:
            while not done.is_set():
                with Session() as s:
                    list_inspections(s, InspectionFilter(verdict="reject"), page_size=20)
                    rates(s, "hour")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted in the test thread
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        _write(db_url, seed=1)
    finally:
        done.set()
        for t in readers:
            t.join()
    assert not errors, errors[0]
    with Session() as s:
        assert count_inspections(s) == BATCHES * BATCH


def test_two_writer_processes(db_url, Session):
    """Two stations writing into one database (the PostgreSQL scale-out path; SQLite serialises them)."""
    with Session() as s:
        ensure_product(s, "tile")
        ensure_product(s, "pcb")
        s.commit()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(db_url, seed)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with Session() as s:
        assert s.scalar(select(func.count(func.distinct(Inspection.uuid)))) == 2 * BATCHES * BATCH


def test_a_new_sqlite_store_is_in_wal_mode_before_any_station_connects(tmp_path):
    """Left in rollback mode by the migrations, the file was switched to WAL by whichever station
    connections came first; racing to switch it, one could fail at once with 'database is
    locked' (SQLite refuses, without waiting, a lock that waiting could deadlock)."""
    path = tmp_path / "station.db"
    upgrade(f"sqlite:///{path}")
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the file's header
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
