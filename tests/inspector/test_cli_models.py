"""inspector models / drift / retrain on a real SQLite store."""

from __future__ import annotations

from sqlalchemy import select

from inspector.cli import main
from inspector.store import AuditEntry, ModelVersion
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
        assert champion(s).id == b.id
    assert main(["models", "rollback", "--actor", "eve", *home]) == 0
    assert main(["models", "list", *home]) == 0
    out = capsys.readouterr().out
    assert "champion: 2 b@2" in out and "rolled back; champion: 1 a@1" in out
    with sessions() as s:
        assert champion(s).id == a.id
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


def test_drift_check_names_a_line_whose_promise_broke(tmp_path, capsys):
    from inspector.store.repo import add_review, ensure_product
    from tests.store.test_promise_on_line import _champion, _line

    engine, sessions = _db(tmp_path)
    with sessions() as s:
        ensure_product(s, "washer")
        rejects = _line(s, "L1", _champion(s), 2000, 160)[:160]
        for i in rejects[:150]:
            add_review(s, i, "ann", "ok")
        s.commit()
    engine.dispose()
    assert main(["drift", "check", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "HIGH  washer/L1 false_reject_promise 0.075 (threshold 0.01, alarm above, by more than chance" in out


def test_training_over_a_recorded_model_moves_it_aside(tmp_path):
    import json

    from inspector.checkpoint import keep_recorded_model
    from inspector.settings import Settings

    settings = Settings(home=tmp_path)
    current = tmp_path / "models" / "current"
    current.mkdir(parents=True)
    (current / "card.json").write_text(json.dumps({"created_at": "2026-11-24T10:00:00+00:00"}))
    (current / "model.safetensors").write_bytes(b"old weights")
    assert keep_recorded_model(settings, current) is None  # no store yet: nothing recorded it
    engine, sessions = _db(tmp_path)
    assert keep_recorded_model(settings, current) is None and current.is_dir()  # a store, but not this model
    with sessions() as s:
        register_model(s, "current@2026-11-24T10:00:00+00:00", str(current.resolve()), {})
        s.commit()
    kept = keep_recorded_model(settings, current)
    assert kept == tmp_path / "models" / "current@2026-11-24T10-00-00+00-00"
    assert (kept / "model.safetensors").read_bytes() == b"old weights" and not current.exists()
    with sessions() as s:
        row = s.scalars(select(ModelVersion)).one()
        assert row.artifact_path == str(kept.resolve())
        assert s.scalars(select(AuditEntry.action)).all()[-1] == "model_moved"
    engine.dispose()
