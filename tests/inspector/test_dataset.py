import shutil

import pytest

from inspector.dataset import hash_split, load_dataset
from inspector.errors import DataError
from tests.helpers.synthetic import MANUAL, make_product


def test_folder_layout_with_stable_hash_splits(synthetic_root):
    ds = load_dataset(synthetic_root)
    assert ds.products() == ["washer"] and len(ds.samples) == 120 and not ds.bad
    assert {s.split for s in ds.samples} == {"train", "val", "test"}
    assert all(s.split == hash_split(f"{s.defect_type}/{s.path.name}") for s in ds.samples)
    assert load_dataset(synthetic_root).fingerprint() == ds.fingerprint()


def test_manifest_rows_that_cannot_be_used_are_reported_with_file_and_reason(tmp_path):
    folder = tmp_path / "plate"
    folder.mkdir()
    (folder / "manual.md").write_text(MANUAL.format(product="plate"))
    (folder / "images").mkdir()
    (folder / "images" / "a.png").write_bytes(b"x")
    rows = [
        "image,product,label,defect_type,split,mask,source",
        "images/a.png,plate,defect,scratch,train,,s",
        "images/missing.png,plate,ok,ok,train,,s",
        "images/a.png,plate,defect,dent,train,,s",
        "images/a.png,plate,ok,ok,holdout,,s",
    ]
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    ds = load_dataset(tmp_path)
    assert len(ds.samples) == 1
    reasons = [str(b) for b in ds.bad]
    assert "manifest.csv:3 (images/missing.png): image file missing" in reasons[0]
    assert "defect type 'dent' is not described" in reasons[1]
    assert "split 'holdout'" in reasons[2]
    with pytest.raises(DataError, match="3 of 4 rows are unusable"):
        ds.check_bad_share(0.05)


def test_unknown_product_and_missing_folder(synthetic_root, tmp_path):
    with pytest.raises(DataError, match=r"unknown product\(s\) \['gear'\]"):
        load_dataset(synthetic_root, ["gear"])
    with pytest.raises(DataError, match="data folder not found"):
        load_dataset(tmp_path / "nowhere")


def test_manual_with_no_defect_sections_is_a_clear_error(tmp_path):
    folder = make_product(tmp_path, "bolt", per_class=2)
    (folder / "manual.md").write_text("# Bolt\n\n## Good part\nshiny\n")
    with pytest.raises(DataError, match="manual.md: no defect sections"):
        load_dataset(tmp_path)
    shutil.rmtree(folder)


def test_shared_manifests_load_completely(shared_data):
    ds = load_dataset(shared_data)
    assert ds.products() == ["glass-bottle", "magnetic-tile", "pcb", "steel-strip"]
    assert len(ds.samples) == 6936 and not ds.bad
