"""Hot folder: settled files are inspected and moved; half-written files wait; bad ones are rejected."""

import json
import time

from sqlalchemy import select

from inspector.service.folder import FolderInput
from inspector.store import Inspection
from inspector.store.session import session_factory
from tests.helpers.waiting import wait_for
from tests.service.conftest import png_bytes


def test_folder_inspects_moves_and_rejects(service, tmp_path):
    watch = tmp_path / "watch"
    (watch / "washer").mkdir(parents=True)
    (watch / "gear").mkdir()
    (watch / "washer" / "a.png").write_bytes(png_bytes("scratch"))
    (watch / "washer" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    (watch / "gear" / "x.png").write_bytes(png_bytes())
    (watch / "washer" / "empty.png").write_bytes(b"")  # a camera that wrote nothing: never skipped forever
    folder = FolderInput(watch, service.worker, line="L3", station="S3", settle_s=0.3, poll_s=0.1)
    service.worker.start()
    folder.start()
    try:
        assert wait_for(
            lambda: (
                (watch / "done" / "washer" / "a.png").exists()
                and (watch / "rejected" / "washer" / "broken.png").exists()
                and (watch / "rejected" / "gear" / "x.png").exists()
                and (watch / "rejected" / "washer" / "empty.png").exists()
            )
        )
        assert "empty file" in (watch / "rejected" / "washer" / "empty.png.reason.txt").read_text()
        verdict = json.loads((watch / "done" / "washer" / "a.png.json").read_text())
        assert verdict["verdict"] in ("accept", "review", "reject")
        assert "corrupt" in (watch / "rejected" / "washer" / "broken.png.reason.txt").read_text()
        assert "unknown product 'gear'" in (watch / "rejected" / "gear" / "x.png.reason.txt").read_text()
    finally:
        folder.stop()
        service.worker.stop()
    with session_factory(service.db_engine)() as s:
        rows = s.scalars(select(Inspection)).all()
    assert sorted(r.verdict != "error" for r in rows) == [False, True]
    assert {(r.line, r.station) for r in rows} == {("L3", "S3")}  # the station's own, on every row


def test_a_file_still_being_written_is_not_read(service, tmp_path):
    watch = tmp_path / "watch"
    (watch / "washer").mkdir(parents=True)
    f = watch / "washer" / "slow.png"
    data = png_bytes("spot")
    f.write_bytes(data[:100])
    folder = FolderInput(watch, service.worker, settle_s=0.5, poll_s=0.1)
    folder.scan()
    time.sleep(0.2)
    with open(f, "ab") as out:  # the camera is still writing
        out.write(data[100:])
    assert folder.scan() == 0  # the size changed since the last look
    assert folder.scan() == 0  # unchanged, but not for settle_s yet
    time.sleep(0.6)
    assert folder.scan() == 1
