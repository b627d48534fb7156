import pytest

from inspector.errors import ManualError
from inspector.manual import load_manual, parse_manual
from tests.helpers.synthetic import MANUAL


def test_parses_front_matter_sections_and_fields():
    m = parse_manual(MANUAL.format(product="washer"))
    assert m.product == "washer" and m.name == "Brushed steel washer" and m.version == "1"
    assert m.classes == ["ok", "scratch", "spot"]
    assert m.defects["scratch"].looks_like.startswith("a long thin dark line")
    assert m.defects["spot"].rule == "reject spots wider than 2 mm."
    assert m.defects["spot"].severity == "minor."
    assert "even gray surface" in m.good_part and "flat brushed steel" in m.overview
    texts = m.class_texts()
    assert len(texts) == 3 and "good part" in texts[0] and "scratch" in texts[1] and "dark line" in texts[1]
    assert len(m.sha256) == 64


def test_manual_without_defect_sections_is_refused_by_name():
    with pytest.raises(ManualError, match="line7.md: no defect sections"):
        parse_manual("---\nproduct: x\n---\n# X\n\n## Good part\nshiny\n", "line7.md")


def test_section_without_fields_uses_its_whole_text_and_ok_is_reserved():
    m = parse_manual("# P\n## Defects\n### dent\nA shallow dent.\n", "m", product="p")
    assert m.defects["dent"].description == "A shallow dent."
    with pytest.raises(ManualError, match="reserved"):
        parse_manual("# P\n## Defects\n### ok\nfine\n", "m", product="p")


def test_missing_manual_file(tmp_path):
    with pytest.raises(ManualError, match="manual not found"):
        load_manual(tmp_path / "manual.md")


def test_every_shared_manual_parses_with_its_defect_types(shared_data):
    import csv

    for folder in sorted(p for p in shared_data.iterdir() if p.is_dir()):
        m = load_manual(folder / "manual.md")
        with open(folder / "manifest.csv") as f:
            types = {r["defect_type"] for r in csv.DictReader(f)} - {"ok"}
        assert types == set(m.defects), folder.name
