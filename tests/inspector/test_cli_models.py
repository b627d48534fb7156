"""inspector models / drift / retrain on a real SQLite store."""

from __future__ import annotations

from sqlalchemy import select

from inspector.cli import main
from inspector.store import AuditEntry
from inspector.store.migrate import upgrade
from inspector.store.monitoring import champion
from inspector.store.repo import promote_model, register_model
from inspector.store.session import make_engine, session_factory


def _db(tmp_path):
    url = f"sqlite:///{tmp_path / 'inspector.db'}"
    upgrade(url)
    engine = make_engine(url)
    return engine, session_factory(engine)


def test_promote_and_rollback(tmp_path, capsys):
    engine, sessions = _db(tmp_path)
    with sessions() as s:
        a = register_model(s, "a@1", "/m/a", {})
        b = register_model(s, "b@2", "/m/b", {})
        promote_model(s, a.id, "setup")
        s.commit()
    home = ["--home", str(tmp_path)]
    assert main(["models", "promote", str(b.id), "--actor", "eve", *home]) == 0
    with sessions() as s:
        assert champion(s)["id"] == b.id
    assert main(["models", "rollback", "--actor", "eve", *home]) == 0
    assert main(["models", "list", *home]) == 0
    out = capsys.readouterr().out
    assert "champion: 2 b@2" in out and "rolled back; champion: 1 a@1" in out
    with sessions() as s:
        assert champion(s)["id"] == a.id
        actions = [(e.actor, e.action) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("eve", "promote") in actions and ("eve", "rollback") in actions
    engine.dispose()


def test_bad_promote_and_rollback_are_clear_errors(tmp_path, capsys):
    engine, _ = _db(tmp_path)
    assert main(["models", "promote", "99", "--home", str(tmp_path)]) == 2
    assert main(["models", "rollback", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model version 99 does not exist" in err and "no earlier champion" in err
    engine.dispose()


def test_drift_and_retrain_with_nothing_to_do(tmp_path, capsys):
    home = ["--home", str(tmp_path)]
    assert main(["drift", "check", *home]) == 0
    assert main(["retrain", *home]) == 0
    out = capsys.readouterr().out
    assert "nothing to check yet" in out and "no retrain due" in out
    assert main(["retrain", "--now", *home]) == 1  # no champion: the run is recorded as failed
    assert "no champion model to retrain" in capsys.readouterr().out
