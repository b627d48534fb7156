from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, func, insert, select

from inspector.store import Base
from inspector.store.migrate import current_revision, downgrade, head_revision, upgrade
from inspector.store.session import make_engine


def at_revision(url: str, revision: str):
    """The database migrated to ``revision`` with product 'tile' in it -> (engine, its tables then, now)."""
    upgrade(url, revision)
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(meta.tables["products"]), [{"id": "tile", "name": "Tile", "active": True, "created_at": now}]
        )
    return engine, meta, now


def test_upgrade_downgrade_upgrade(fresh_db_url):
    upgrade(fresh_db_url)
    downgrade(fresh_db_url, "base")
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    assert current_revision(engine) == head_revision(fresh_db_url)
    engine.dispose()


def test_models_and_migrations_agree(db_url):
    """Fails when someone changes a table and forgets the migration (autogenerate finds a diff)."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == [], diff


def test_upgrade_keeps_every_row(fresh_db_url):
    engine, meta, now = at_revision(fresh_db_url, "0001")
    with engine.begin() as conn:
        conn.execute(
            insert(meta.tables["inspections"]),
            [
                {
                    "uuid": f"u{i}",
                    "captured_at": now,
                    "received_at": now,
                    "line": "L1",
                    "station": "S",
                    "camera": "c",
                    "product_id": "tile",
                    "verdict": "ok",
                    "image_only": False,
                }
                for i in range(500)
            ],
        )
    upgrade(fresh_db_url)
    from inspector.store import Inspection

    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Inspection)) == 500
        assert conn.scalar(select(func.count()).where(Inspection.golden.is_(False))) == 500
        from inspector.store import InspectionCount

        assert conn.scalar(select(func.sum(InspectionCount.n))) == 500  # hourly counters backfilled
    engine.dispose()


def test_0007_keeps_the_classifier_score_under_its_real_name(fresh_db_url):
    """Before 0007 ``anomaly_score`` held the classifier's P(defect), the score the thresholds cut."""
    engine, meta, now = at_revision(fresh_db_url, "0006")
    row = {"uuid": "u1", "captured_at": now, "received_at": now, "line": "L1", "station": "S", "camera": "c",
           "product_id": "tile", "verdict": "defect", "image_only": False, "golden": False,
           "anomaly_score": 0.73}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(meta.tables["inspections"]), [row])
    upgrade(fresh_db_url)
    from inspector.store import Inspection

    with engine.connect() as conn:
        got = conn.execute(select(Inspection.classifier_score, Inspection.defect_score, Inspection.anomaly_score)).one()
    assert tuple(got) == (0.73, 0.73, None)
    downgrade(fresh_db_url, "0006")
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        assert conn.scalar(select(meta.tables["inspections"].c.anomaly_score)) == 0.73
    engine.dispose()


def test_0008_renames_stored_verdicts_and_counts_to_the_one_vocabulary(fresh_db_url):
    """Rows and hourly counters stored as ok / uncertain / defect read accept / review / reject after
    0008; the new CHECK refuses an old word; downgrading gives the old words back."""
    import pytest
    from sqlalchemy.exc import IntegrityError

    engine, meta, now = at_revision(fresh_db_url, "0007")
    base = {"captured_at": now, "received_at": now, "line": "L1", "station": "S", "camera": "c",
            "product_id": "tile", "image_only": False, "golden": False}  # fmt: skip
    old = ["ok", "uncertain", "defect", "error"]
    with engine.begin() as conn:
        conn.execute(insert(meta.tables["inspections"]), [{**base, "uuid": f"u{v}", "verdict": v} for v in old])
        hour = now.replace(minute=0, second=0, microsecond=0)
        conn.execute(
            insert(meta.tables["inspection_counts"]),
            [{"hour": hour, "product_id": "tile", "line": "L1", "verdict": v, "n": 3} for v in old],
        )
    upgrade(fresh_db_url)
    from inspector.store import Inspection, InspectionCount

    with engine.connect() as conn:
        assert dict(conn.execute(select(Inspection.uuid, Inspection.verdict)).all()) == {
            "uok": "accept", "uuncertain": "review", "udefect": "reject", "uerror": "error"}  # fmt: skip
        assert sorted(conn.scalars(select(InspectionCount.verdict))) == ["accept", "error", "reject", "review"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(Inspection), [{**base, "uuid": "late", "verdict": "ok"}])
    downgrade(fresh_db_url, "0007")
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        assert sorted(conn.scalars(select(meta.tables["inspections"].c.verdict))) == sorted(old)
    engine.dispose()


def test_0011_takes_parts_an_operator_judged_off_the_review_queue(fresh_db_url):
    """A part reviewed before 0011 gets its latest review's time, and the queue no longer offers it."""
    from datetime import timedelta

    from inspector.store.queries import review_queue
    from inspector.store.session import session_factory

    engine, meta, now = at_revision(fresh_db_url, "0010")
    base = {"captured_at": now, "received_at": now, "line": "L1", "station": "S", "camera": "c",
            "product_id": "tile", "image_only": False, "golden": False, "verdict": "review"}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(meta.tables["inspections"]), [{**base, "uuid": "judged"}, {**base, "uuid": "waiting"}])
        judged = conn.scalar(
            select(meta.tables["inspections"].c.id).where(meta.tables["inspections"].c.uuid == "judged")
        )
        later = now + timedelta(minutes=5)
        conn.execute(
            insert(meta.tables["reviews"]),
            [{"inspection_id": judged, "reviewer": "anna", "label": "ok", "created_at": t} for t in (now, later)],
        )
    upgrade(fresh_db_url)
    from inspector.store import Inspection

    with engine.connect() as conn:
        got = dict(conn.execute(select(Inspection.uuid, Inspection.reviewed_at)).all())
    assert got["waiting"] is None and abs(got["judged"] - later) < timedelta(milliseconds=1)
    with session_factory(engine)() as s:
        assert [q.uuid for q in review_queue(s)] == ["waiting"]
    downgrade(fresh_db_url, "0010")
    engine.dispose()
