"""Every page against a real seeded SQLite database (streamlit.testing AppTest): the numbers
shown are the database's, reviews and promotions are written, roles are enforced."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from inspector.services import Account
from inspector.store import AuditEntry, ManualVersion, Review
from inspector.store.monitoring import champion
from inspector.store.session import make_engine, session_factory
from tests.dashboard.conftest import APP, PAGES, PASSWORDS

OPERATOR, ENGINEER = Account("olga", "operator"), Account("erik", "engineer")


def page(name: str, who: Account | None = ENGINEER) -> AppTest:
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=30)
    if who:
        at.session_state["user"] = who
    return at.run()


def db(station):
    engine = make_engine(station["url"])
    return engine, session_factory(engine)


def test_login_rejects_a_wrong_password_and_admits_a_right_one(station):
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.text_input(key="login_user").input("olga")
    at.text_input(key="login_password").input("wrong")
    at.button[0].click().run()
    assert "wrong password" in at.error[0].value and "user" not in at.session_state
    at.text_input(key="login_password").input(PASSWORDS["olga"])
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["user"] == OPERATOR


@pytest.mark.parametrize("name", ["overview", "inspections", "review", "drift", "models", "products"])
def test_every_page_renders_without_error(station, name):
    at = page(name)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_overview_numbers_equal_the_database(station):
    at = page("overview")
    since = station["now"] - timedelta(days=7)
    rows = [r for r in station["rows"] if r["captured_at"] >= since]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Inspected"] == f"{len(rows):,}"
    judged = [r for r in rows if r["verdict"] != "error"]
    ok = sum(r["verdict"] == "accept" for r in judged)
    assert metrics["Yield (accepted)"] == f"{ok / len(judged):.1%}"
    assert metrics["Rejected"] == f"{sum(r['verdict'] == 'reject' for r in judged) / len(judged):.1%}"


def test_inspections_total_and_detail(station):
    at = page("inspections")
    in_range = [r for r in station["rows"] if r["captured_at"] >= station["now"] - timedelta(days=8)]
    assert any(f"{len(in_range):,} inspections match" in c.value for c in at.caption)
    at.selectbox[2].select("reject").run()  # verdict
    want = sum(r["verdict"] == "reject" for r in in_range)
    assert any(f"{want:,} inspections match" in c.value for c in at.caption)
    assert at.toggle[0].value is True  # the newest defect has an image and a map


def test_inspection_detail_shows_the_anomaly_map_where_there_is_one(station):
    at = page("inspections")
    newest = max(station["rows"], key=lambda r: r["captured_at"])  # seeded with an anomaly map
    assert at.toggle[0].label == "Where the part differs from good parts"
    assert at.number_input[1].value == next(r for r in _page_rows(station) if r.uuid == newest["uuid"]).id


def _page_rows(station):
    from inspector.store.queries import list_inspections

    engine, sessions = db(station)
    with sessions() as s:
        rows = list_inspections(s).rows
    engine.dispose()
    return rows


def test_anomaly_heat_is_full_at_the_reject_line_and_clear_below_half():
    import io

    import numpy as np
    from PIL import Image

    from dashboard.heatmap import anomaly_heat, overlay
    from tests.dashboard.conftest import ANOMALY_MAP

    heat = anomaly_heat(ANOMALY_MAP)
    assert heat[2, 9] == 1.0 and heat[8, 2] == 0.0
    img = io.BytesIO()
    Image.fromarray(np.full((96, 96, 3), 100, np.uint8)).save(img, "PNG")
    shown = np.asarray(overlay(img.getvalue(), None, anomaly_map=ANOMALY_MAP))
    hot, cold = shown[20, 76].astype(int), shown[70, 10].astype(int)
    assert hot[0] - hot[1] > 80 and tuple(cold) == (100, 100, 100)  # red on the hot corner only


def test_review_writes_the_reviewer_and_undo_takes_it_back(station):
    at = page("review", OPERATOR)
    at.button(key="review_ok").click().run()
    assert not at.exception
    engine, sessions = db(station)
    with sessions() as s:
        reviews = s.scalars(select(Review)).all()
        assert [(r.reviewer, r.label) for r in reviews] == [("olga", "ok")]
        reviewed = reviews[0].inspection_id
    at.button(key="undo").click().run()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Review)) == 0
        actions = [a.action for a in s.scalars(select(AuditEntry).where(AuditEntry.actor == "olga"))]
    assert actions == ["review", "review_undo"]
    oldest_review = min((r for r in station["rows"] if r["verdict"] == "review"), key=lambda r: r["captured_at"])
    with sessions() as s:
        from inspector.store import Inspection

        assert s.get(Inspection, reviewed).uuid == oldest_review["uuid"]  # the queue showed it first
    engine.dispose()


def test_a_spot_check_comes_after_the_parts_sent_to_review_and_says_what_it_is(station):
    from sqlalchemy import update

    from inspector.store import Inspection

    engine, sessions = db(station)
    with sessions() as s:
        newest_accepted = s.scalars(
            select(Inspection).where(Inspection.verdict == "accept").order_by(Inspection.captured_at.desc())
        ).first()
        newest_accepted.spot_check = True
        s.execute(update(Inspection).where(Inspection.verdict == "review").values(verdict="reject"))
        s.commit()
        spot = newest_accepted.id
    at = page("review", OPERATOR)
    assert any(f"#{spot} · SPOT CHECK of an accepted part" in m.value for m in at.markdown)
    at.button(key="review_ok").click().run()
    with sessions() as s:
        assert [r.inspection_id for r in s.scalars(select(Review))] == [spot]
    engine.dispose()


def test_an_operator_cannot_promote_or_edit(station):
    at = page("models", OPERATOR)
    assert any("Only engineers" in i.value for i in at.info)
    assert not [b for b in at.button if b.key in ("promote", "rollback", "retrain_now")]
    at = page("products", OPERATOR)
    assert not [b for b in at.button if (b.key or "").startswith("save_")]


def test_an_operator_is_refused_by_the_service_itself(station):
    from inspector.services import PermissionDeniedError, promote

    engine, sessions = db(station)
    with sessions() as s, pytest.raises(PermissionDeniedError):
        promote(s, OPERATOR, 3)
    engine.dispose()


def test_an_engineer_promotes_with_confirmation(station):
    at = page("models")
    at.selectbox(key="promote_pick").select(3).run()
    assert at.button(key="promote").disabled  # not before the confirmation is ticked
    at.checkbox(key="confirm_promote").check().run()
    at.button(key="promote").click().run()
    engine, sessions = db(station)
    with sessions() as s:
        assert champion(s).id == 3
        assert (
            s.scalar(select(AuditEntry).where(AuditEntry.action == "promote").order_by(AuditEntry.id.desc())).actor
            == "erik"
        )
    engine.dispose()


def test_an_engineer_saves_a_new_manual_version(station):
    at = page("products")
    area = at.text_area(key="edit_tile")
    area.input(area.value.replace("Cause: handling.", "Cause: handling at station 3.")).run()
    at.button(key="save_tile").click().run()
    assert not at.error
    engine, sessions = db(station)
    with sessions() as s:
        versions = s.scalars(select(ManualVersion).where(ManualVersion.product_id == "tile")).all()
    engine.dispose()
    assert [v.version for v in versions] == [1, 2, 3] and "station 3" in versions[-1].text


def test_a_broken_manual_is_refused_with_a_message(station):
    at = page("products")
    at.text_area(key="edit_tile").input("no front matter, no defects").run()
    at.button(key="save_tile").click().run()
    assert at.error and not at.exception


def test_drift_page_shows_the_checks(station):
    at = page("drift")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Checks"] == "10" and metrics["High"] == "1"


def test_empty_database_is_a_message_not_an_error(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("INSPECTOR_HOME", str(tmp_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    from inspector.store.migrate import upgrade

    upgrade(f"sqlite:///{tmp_path / 'inspector.db'}")
    for name in ("overview", "review", "drift", "models", "products"):
        at = page(name)
        assert not at.exception and not at.error, name


def test_database_down_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("INSPECTOR_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = page("overview")
    assert not at.exception
    assert "database cannot be read" in at.error[0].value


def test_a_missing_image_file_is_a_message(station):
    from inspector.store.files import ImageStore
    from inspector.store.queries import review_queue

    engine, sessions = db(station)
    with sessions() as s:
        first = review_queue(s, 1)[0]
    engine.dispose()
    ImageStore(station["home"] / "images").delete(first.image_sha256)
    at = page("review")
    assert not at.exception
    assert any("no longer kept" in i.value for i in at.info)


def test_an_engineer_puts_a_reviewed_inspection_in_the_golden_set(station):
    from inspector.services import review
    from inspector.store import Inspection

    engine, sessions = db(station)
    newest = max(r["captured_at"] for r in station["rows"])
    with sessions() as s:
        target = s.scalar(select(Inspection.id).where(Inspection.captured_at == newest))
        review(s, ENGINEER, target, "ok", None, None)
        s.commit()
    at = page("inspections")
    at.checkbox(key=f"golden_{target}").check().run()
    assert not at.exception
    with sessions() as s:
        assert s.get(Inspection, target).golden is True
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.action == "golden_set")) == "erik"
    engine.dispose()
    assert not [c for c in page("inspections", OPERATOR).checkbox if (c.key or "").startswith("golden_")]


def test_a_demoted_or_deactivated_engineer_loses_the_rights_at_once(station):
    """A session keeps the login it started with; the rights are the store's, read again for every
    action (issue #14, item 5)."""
    from inspector.services import PermissionDeniedError, create_user, promote, save_manual
    from inspector.store import User

    engine, sessions = db(station)
    with sessions() as s:
        create_user(s, "dora", "a-long-password", "engineer")
        s.commit()
    dora = Account("dora", "engineer")  # what her dashboard session holds
    assert [b for b in page("models", dora).button if b.key == "promote"]
    with sessions() as s:
        create_user(s, "dora", "a-long-password", "operator")  # demoted
        s.commit()
    at = page("models", dora)
    assert not [b for b in at.button if b.key in ("promote", "rollback", "retrain_now")]
    assert at.session_state["user"] == Account("dora", "operator")
    with sessions() as s, pytest.raises(PermissionDeniedError, match="needs an engineer"):
        promote(s, dora, 3)
    with sessions() as s:
        s.scalar(select(User).where(User.username == "dora")).active = False
        s.commit()
    with sessions() as s, pytest.raises(PermissionDeniedError, match="no longer an active user"):
        save_manual(s, dora, "tile", "x")
    at = page("overview", dora)
    assert "user" not in at.session_state and any("no longer an active user" in w.value for w in at.warning)
    engine.dispose()


def test_the_retraining_page_shows_the_champions_held_out_numbers(station):
    at = page("models", OPERATOR)
    table = at.dataframe[0].value
    row = table.iloc[0]
    assert row["Product"] == "tile" and row["Defects passed (escape)"] == "5.0 %"
    assert row["False rejects: measured / promised"] == "0.8 % / 1.0 %" and row["Most chance allows"] == "2.9 %"


def test_the_models_page_shows_the_good_parts_the_promise_stands_on(station):
    at = page("models", OPERATOR)
    table = next(d.value for d in at.dataframe if "Set by (good-labelled part, score)" in d.value.columns)
    row = table.iloc[0]
    assert row["Product"] == "tile" and row["Reject above"] == "1.47"
    assert row["Set by (good-labelled part, score)"] == "tile096 (1.49), tile096 (1.47)"
    assert row["Reject above without them"] == "1.42"
    assert row["Val escape: now / without"] == "50.0 % / 45.0 %"
    assert len(at.get("image")) == 1  # the image on this machine is shown; the missing one is named
    assert any("tile096_b.png" in c.value and "not on this machine" in c.value for c in at.caption)


def test_the_models_page_says_how_the_promise_and_the_escape_rate_fare_on_each_line(station):
    from inspector.store.monitoring import record_drift_events

    def on_the_line(at: AppTest):
        return next((d.value for d in at.dataframe if "Line" in d.value.columns), None)

    assert on_the_line(page("models")) is None
    assert any("No drift check has seen a reviewed reject or spot check" in c.value for c in page("models").caption)
    now = station["now"]

    def check(model, line, minutes_ago, severity, false_rejects):
        at = now - timedelta(minutes=minutes_ago)
        details = {"model": model, "false_rejects": false_rejects, "reviewed_rejects": 40, "judged": 2000}
        return {"product_id": "tile", "line": line, "metric": "false_reject_promise", "value": false_rejects / 2000,
                "threshold": 0.01, "severity": severity, "window_start": at, "window_end": at, "details": details,
                "created_at": at}  # fmt: skip

    engine, sessions = db(station)
    with sessions() as s:
        record_drift_events(
            s,
            [
                check("second@2026-11-10", "L1", 30, "ok", 10),  # an older check of the same line
                check("second@2026-11-10", "L1", 5, "warn", 40),
                check("first@2026-11-01", "L3", 1, "high", 300),  # the retired model's: not the champion's promise
                check("second@2026-11-10", "L2", 10, "ok", 12),
                {**check("second@2026-11-10", "L1", 5, "high", 0), "metric": "escape_on_line", "value": 0.4,
                 "details": {"model": "second@2026-11-10", "shipped_defects": 6, "reviewed_spot_checks": 30,
                             "test_escape": 0.05}},
            ],
        )  # fmt: skip
        s.commit()
    engine.dispose()
    table = on_the_line(page("models", OPERATOR))
    assert table.to_dict("records") == [
        {
            "Product": "tile",
            "Line": "L1",
            "False rejects (reviewed rejects found good)": "≥ 2.0 % (40 of 40 reviewed, 2,000 parts): "
            "above target, within chance",
            "Defects shipped (spot checks)": "≈ 40.0 % (6 of 30 defective; test split: 5.0 % accepted): "
            "far above the test split's",
        },
        {
            "Product": "tile",
            "Line": "L2",
            "False rejects (reviewed rejects found good)": "≥ 0.6 % (12 of 40 reviewed, 2,000 parts): holds",
            "Defects shipped (spot checks)": "no reviewed spot check yet",
        },
    ]


def test_a_retraining_run_names_the_parts_its_challengers_threshold_stands_on(station):
    from inspector.store.modeling import ModelVersion
    from inspector.store.repo import register_model
    from inspector.store.retraining import finish_run, start_run

    engine, sessions = db(station)
    with sessions() as s:
        champ = champion(s)
        card = s.get(ModelVersion, champ.id).card
        card["products"]["tile"]["decision"]["basis"]["set_by"] = [{"image": "/r/p9.png", "part": "p9", "score": 1.3}]
        challenger = register_model(s, "challenger-4@2026-12-04", "/models/c4", card)
        s.commit()
        run = start_run(s, "nightly", champ.id)
        finish_run(s, run, status="finished", challenger_id=challenger.id, decision="kept", reason="not better")
    engine.dispose()
    at = page("models", OPERATOR)
    assert not at.exception
    assert any(
        c.value == "The challenger's tile threshold (its 1% promise, 205 good parts) is set by p9 (1.30)"
        for c in at.caption
    )


def test_an_engineer_corrects_the_label_of_a_part_the_threshold_stands_on(station):
    from inspector.corrections import correction_for
    from inspector.dataset import load_dataset

    setter = station["home"] / "data" / "tile" / "images" / "ok" / "tile096_a.png"
    assert not [b for b in page("models", OPERATOR).button if b.key.startswith("fix_")]  # operators only look
    at = page("models")
    assert at.button(key="fix_tile_0").disabled  # "ok" is what the data already says
    at.selectbox(key="kind_tile_0").set_value("blowhole").run()
    at.button(key="fix_tile_0").click().run()
    assert not at.exception and not at.error
    fixed = correction_for(setter)
    assert (fixed.defect_type, fixed.reviewer) == ("blowhole", "erik")
    assert {s.path.name: s.defect_type for s in load_dataset(station["home"] / "data").samples} == {
        "tile096_a.png": "blowhole"
    }  # the next training learns it
    assert any("Corrected to **blowhole** by erik" in c.value for c in page("models").caption)


def test_a_late_inspection_says_the_line_rejected_it_failsafe(station):
    from inspector.store.repo import mark_late

    newest = max(station["rows"], key=lambda r: r["captured_at"])  # the detail the page opens on
    engine, sessions = db(station)
    with sessions() as s:
        assert mark_late(s, [newest["uuid"]]) == 1
        s.commit()
    engine.dispose()
    at = page("inspections")
    assert not at.exception
    assert any("line rejected the part fail-safe" in w.value for w in at.warning)
