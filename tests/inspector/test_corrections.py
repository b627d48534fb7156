"""A person's label corrections override the source's labels for every later training, and a bad
one is reported, never applied."""

from __future__ import annotations

import pytest

from inspector.corrections import CORRECTIONS_FILE, add_correction, correction_for
from inspector.dataset import load_dataset
from inspector.errors import DataError
from inspector.services import Account, PermissionDeniedError, correct_label, create_user
from inspector.store import AuditEntry
from inspector.store.migrate import upgrade
from inspector.store.repo import InvalidRecordError
from inspector.store.session import make_engine, session_factory
from tests.helpers.synthetic import make_product


def _types(ds) -> dict[str, str]:
    return {s.path.name: s.defect_type for s in ds.samples}


def test_a_correction_relabels_a_training_image_and_the_latest_one_wins(tmp_path):
    folder = make_product(tmp_path, "washer", per_class=6)
    image = folder / "images" / "ok" / "ok_002.png"
    assert _types(load_dataset(tmp_path))["ok_002.png"] == "ok"
    c = add_correction(image, "scratch", "erik", "a thin line near the rim\n, seen at 4x")
    assert (c.image, c.reviewer, c.comment) == ("images/ok/ok_002.png", "erik", "a thin line near the rim , seen at 4x")
    ds = load_dataset(tmp_path)
    assert _types(ds)["ok_002.png"] == "scratch" and not ds.bad
    assert sum(t != "ok" for t in _types(ds).values()) == 13  # the other images keep the source's labels
    add_correction(image, "ok", "olga")
    assert _types(load_dataset(tmp_path))["ok_002.png"] == "ok" and correction_for(image).reviewer == "olga"
    assert correction_for(folder / "images" / "ok" / "ok_001.png") is None


def test_a_good_part_found_defective_leaves_the_calibration_split(tmp_path):
    make_product(tmp_path, "washer", per_class=40)
    ds = load_dataset(tmp_path)
    ds.hold_out_calibration(0.05)
    calib = next(s for s in ds.samples if s.split == "calib")
    add_correction(calib.path, "spot", "erik")
    again = load_dataset(tmp_path)
    again.hold_out_calibration(0.05)
    moved = next(s for s in again.samples if s.path == calib.path)
    assert moved.split == "train" and moved.defect_type == "spot"


def test_bad_corrections_are_refused_at_the_door_or_reported_not_applied(tmp_path):
    folder = make_product(tmp_path, "washer", per_class=4)
    image = folder / "images" / "ok" / "ok_000.png"
    with pytest.raises(DataError, match="'dent' is not a defect type of washer"):
        add_correction(image, "dent", "erik")
    with pytest.raises(DataError, match="no such image"):
        add_correction(folder / "images" / "ok" / "gone.png", "spot", "erik")
    stray = tmp_path / "stray.png"
    stray.write_bytes(image.read_bytes())
    with pytest.raises(DataError, match="not inside a product folder"):
        add_correction(stray, "spot", "erik")
    with open(folder / CORRECTIONS_FILE, "a") as f:  # written by hand, or by an older manual
        f.write("image,defect_type\nimages/ok/ok_000.png,dent\nimages/ok/gone.png,spot\n,spot\n")
    ds = load_dataset(tmp_path)
    assert _types(ds)["ok_000.png"] == "ok"
    reasons = sorted(str(b) for b in ds.bad)
    assert len(reasons) == 3
    assert any("(images/ok/ok_000.png): defect type 'dent' is not described" in r for r in reasons)
    assert any("(images/ok/gone.png): corrects an image the data does not hold" in r for r in reasons)
    assert any("image or defect_type empty" in r for r in reasons)


def test_only_an_engineer_corrects_a_label_and_it_is_audited(tmp_path):
    folder = make_product(tmp_path, "washer", per_class=2)
    image = str(folder / "images" / "ok" / "ok_001.png")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as s:
        create_user(s, "olga", "operator-pass-1", "operator")
        create_user(s, "erik", "engineer-pass-1", "engineer")
        with pytest.raises(PermissionDeniedError):
            correct_label(s, Account("olga", "operator"), image, "spot")
        with pytest.raises(InvalidRecordError, match="not a defect type"):
            correct_label(s, Account("erik", "engineer"), image, "dent")
        correct_label(s, Account("erik", "engineer"), image, "spot", "a dark spot")
        s.commit()
        entry = s.query(AuditEntry).filter_by(action="label_correction").one()
        assert entry.actor == "erik" and entry.details == {"defect_type": "spot", "comment": "a dark spot"}
    engine.dispose()
    assert _types(load_dataset(tmp_path))["ok_001.png"] == "spot"


def test_the_relabel_command_checks_every_image_before_writing_any(tmp_path, capsys):
    from inspector.cli import main

    folder = make_product(tmp_path, "washer", per_class=2)
    a, b = folder / "images" / "ok" / "ok_000.png", folder / "images" / "ok" / "ok_001.png"
    assert main(["relabel", str(a), str(folder / "images" / "ok" / "gone.png"), "--as", "spot"]) == 2
    assert "gone.png: no such image" in capsys.readouterr().err and not (folder / CORRECTIONS_FILE).exists()
    assert main(["relabel", str(a), str(b), "--as", "spot", "--by", "erik", "--comment", "dark spot, 2 o'clock"]) == 0
    assert "images/ok/ok_001.png: spot (by erik" in capsys.readouterr().out
    assert {s.path.name: s.defect_type for s in load_dataset(tmp_path).samples if s.path.parent.name == "ok"} == {
        "ok_000.png": "spot",
        "ok_001.png": "spot",
    }
