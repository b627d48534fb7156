import io
import os
import time
from datetime import timedelta
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from inspector.store import Inspection
from inspector.store.files import ImageStore, apply_retention, reconcile
from inspector.store.repo import add_review, ensure_product, record_inspections
from tests.helpers.factories import START, inspection_rows


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (300, 200), value).save(buf, "PNG")
    return buf.getvalue()


def test_put_is_content_addressed_deduplicated_and_thumbnailed(tmp_path):
    store = ImageStore(tmp_path)
    a, again = store.put(png(10)), store.put(png(10))
    assert a == again and store.read(a.sha256) == png(10)
    assert len(list(tmp_path.rglob("*.img"))) == 1 and not list(tmp_path.rglob(".tmp-*"))
    with Image.open(store.thumbnail(a.sha256)) as t:
        assert max(t.size) == 256


def test_retention_keeps_defects_reviewed_golden_and_shared_bytes(Session, tmp_path):
    store = ImageStore(tmp_path / "img")
    images = {
        name: store.put(png(v))
        for v, name in enumerate(["old_ok", "old_defect", "old_reviewed", "golden", "recent_ok", "shared"])
    }
    rows = inspection_rows(7)
    kinds = ["old_ok", "old_defect", "old_reviewed", "golden", "recent_ok", "shared", "shared"]
    for r, kind in zip(rows, kinds, strict=True):
        r.update(
            image_sha256=images[kind].sha256,
            image_uri=images[kind].uri,
            product_id="tile",
            verdict="accept",
            defect_type=None,
            captured_at=START,
            error=None,
        )
    rows[1]["verdict"], rows[1]["defect_type"] = "reject", "crack"
    rows[3]["golden"] = True
    rows[4]["captured_at"] = START + timedelta(days=40)
    rows[6]["captured_at"] = START + timedelta(days=40)  # the same bytes seen again recently
    with Session() as s:
        ensure_product(s, "tile")
        record_inspections(s, rows)
        s.flush()
        reviewed = s.scalar(select(Inspection.id).where(Inspection.uuid == rows[2]["uuid"]))
        add_review(s, reviewed, "anna", "ok")
        s.commit()
        deleted = apply_retention(s, store, keep_days=30, now=START + timedelta(days=41))
        purged = {r.uuid for r in s.scalars(select(Inspection).where(Inspection.image_purged_at.is_not(None)))}
        kept_hash = s.scalar(select(Inspection.image_sha256).where(Inspection.uuid == rows[0]["uuid"]))
    assert deleted == 1 and not store.path(images["old_ok"].sha256).exists()
    for kind in ("old_defect", "old_reviewed", "golden", "recent_ok", "shared"):
        assert store.path(images[kind].sha256).exists(), kind
    assert purged == {rows[0]["uuid"], rows[5]["uuid"]}  # the old row of the shared bytes is marked, file kept
    assert kept_hash == images["old_ok"].sha256  # the row keeps the hash when the file is gone


def test_reconcile_removes_files_left_by_a_crash_before_the_row_insert(Session, tmp_path):
    store = ImageStore(tmp_path / "img")
    referenced, orphan, fresh = store.put(png(1)), store.put(png(2)), store.put(png(3))
    old = time.time() - 3600
    for img in (referenced, orphan):
        os.utime(store.path(img.sha256), (old, old))
    row = inspection_rows(1)[0]
    row.update(image_sha256=referenced.sha256, product_id="tile")
    with Session() as s:
        ensure_product(s, "tile")
        record_inspections(s, [row])
        s.commit()
        assert reconcile(s, store, grace_s=300) == 1
    assert store.path(referenced.sha256).exists() and store.path(fresh.sha256).exists()
    assert not store.path(orphan.sha256).exists()


def test_relative_root_still_gives_file_uris(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored = ImageStore(Path("var/images")).put(png(5))  # the default home is the relative "var"
    assert stored.uri.startswith("file:///") and Path(stored.uri.removeprefix("file://")).exists()
