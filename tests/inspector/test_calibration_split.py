"""The false-reject promise is made on good parts that chose nothing: not the epoch, not a
temperature, not a deciding part; and each is scored by a memory bank that never saw it."""

from __future__ import annotations

from inspector import training
from inspector.dataset import CALIBRATION, load_dataset
from inspector.settings import Settings


def test_calibration_parts_are_used_for_the_thresholds_only(synthetic_root, home, monkeypatch):
    seen: dict[str, set] = {}
    train_classifier, fit_anomaly = training.train_classifier, training.fit_anomaly

    def spy_classifier(settings, prep, train_samples, progress):
        seen["classifier_train"] = {s.path for s in train_samples}
        seen["classifier_val"] = {s.path for s in prep.ds.split("val")}  # epoch and temperatures
        return train_classifier(settings, prep, train_samples, progress)

    builds = []

    def spy_anomaly(cfg, ds, *args, **kwargs):
        builds.append(fit_anomaly(cfg, ds, *args, **kwargs))
        return builds[-1]

    monkeypatch.setattr(training, "train_classifier", spy_classifier)
    monkeypatch.setattr(training, "fit_anomaly", spy_anomaly)
    s = Settings(home=home)  # the session's feature cache
    s.train.epochs, s.train.views = 3, 1
    s.verdict.target_frr_by_product = {"washer": 0.2}  # its own promise, not the line's 1 %
    card = training.train_model(s, [synthetic_root], None, progress=False)

    ds = load_dataset(synthetic_root)
    ds.hold_out_calibration(s.verdict.target_frr_of, s.verdict.calibration_share)
    calib = {x.path for x in ds.split(CALIBRATION)}
    assert calib and all(not x.is_defect for x in ds.split(CALIBRATION))
    for role in ("classifier_train", "classifier_val"):
        assert seen[role] and not calib & seen[role], role
    decision = card.products["washer"].decision
    assert decision.thresholds.n_good == len(calib)  # thresholds from exactly those parts
    assert decision.thresholds.target_frr == 0.2 and card.metrics["test"]["washer"]["target_frr"] == 0.2
    assert card.data["calibration_parts"] == {"washer": len(calib)}
    # the station's bank saw every good part; each calibration part was scored by a bank without it
    folds = builds[0].folds["washer"]
    assert len(folds) == s.anomaly.calibration_folds
    assert set().union(*(f.held for f in folds)) == calib
    assert all(not f.held & f.sources and calib - f.held <= f.sources for f in folds)
    assert card.products["washer"].anomaly.bank_images == len(calib) + sum(not x.is_defect for x in ds.split("train"))


def test_a_product_without_train_defects_calibrates_on_every_good_part(tmp_path, home):
    """Glass-bottle's case: good train images only. Holding half of them out of the bank made
    the 1 % threshold the largest of ~100 scores; cross-fitting calibrates on all of them."""
    from tests.helpers.synthetic import make_product

    folder = make_product(tmp_path, "washer", per_class=40)
    lines = ["image,product,label,defect_type,split,mask,source,group"]
    for path in sorted((folder / "images").glob("*/*.png")):
        kind = path.parent.name
        split = "train" if kind == "ok" else "val" if path.stem.endswith(("0", "1", "2", "3", "4")) else "test"
        lines.append(f"images/{kind}/{path.name},washer,{'ok' if kind == 'ok' else 'defect'},{kind},{split},,,")
    for i, path in enumerate(sorted((folder / "images" / "ok").glob("*.png"))[:8]):  # val and test need good parts
        split = "val" if i < 4 else "test"
        lines = [ln.replace(f"{path.name},washer,ok,ok,train", f"{path.name},washer,ok,ok,{split}") for ln in lines]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    s = Settings(home=home)
    s.train.epochs, s.train.views = 3, 1
    card = training.train_model(s, [folder], None, progress=False)

    washer = card.products["washer"]
    assert card.classifier is None  # nothing for a classifier to learn from
    assert washer.decision.thresholds.n_good == 32 == card.data["calibration_parts"]["washer"]
    assert washer.anomaly.bank_images == 32
    assert card.metrics["test"]["washer"]["escape_rate"] < 0.5  # the bank still catches the defects


def test_groups_stay_on_one_side_of_the_calibration_split(tmp_path):
    from tests.helpers.synthetic import make_product

    folder = make_product(tmp_path, "washer", per_class=40)
    lines = ["image,product,label,defect_type,split,mask,source,group"]
    for i, path in enumerate(sorted((folder / "images").glob("*/*.png"))):
        defect = path.parent.name
        lines.append(
            f"images/{defect}/{path.name},washer,{'ok' if defect == 'ok' else 'defect'},{defect},train,,,part{i // 4}"
        )
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(folder)
    ds.hold_out_calibration(0.01)
    sides: dict[str, set] = {}
    for x in ds.samples:
        if not x.is_defect:
            sides.setdefault(x.group, set()).add(x.split)
    assert all(len(v) == 1 for v in sides.values())  # every physical part on one side
    assert {"train", CALIBRATION} == set().union(*sides.values())


def test_crops_of_one_board_stay_on_one_side_of_the_calibration_split_and_its_folds(tmp_path):
    """pcb's case: a good crop must calibrate as a new board would, so no other good crop of its
    board may teach the classifier or its fold's bank. Each crop keeps its own label."""
    from inspector.anomaly_fit import deal_folds
    from tests.helpers.synthetic import make_product

    folder = make_product(tmp_path, "washer", per_class=40)
    lines = ["image,product,label,defect_type,split,mask,source,origin"]
    for i, path in enumerate(sorted((folder / "images").glob("*/*.png"))):
        defect = path.parent.name
        label = "ok" if defect == "ok" else "defect"
        lines.append(f"images/{defect}/{path.name},washer,{label},{defect},train,,,board{i % 10}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(folder)
    assert not ds.doubtful_good()  # a board with a defect elsewhere still has good crops
    ds.hold_out_calibration(0.01)
    sides: dict[str, set] = {}
    for x in ds.samples:
        if not x.is_defect:
            sides.setdefault(x.origin, set()).add(x.split)
    assert all(len(v) == 1 for v in sides.values())  # every board's good crops on one side
    assert {"train", CALIBRATION} == set().union(*sides.values())
    folds = deal_folds(ds.split(CALIBRATION), 3)
    assert len(folds) > 1
    assert all(len({x.origin for x in f} & {x.origin for x in g}) == 0 for f in folds for g in folds if f is not g)


def test_good_frames_of_a_part_shown_defective_elsewhere_calibrate_nothing(tmp_path):
    """A tile labelled ok under one lighting and blowhole under another is not a good part."""
    from tests.helpers.synthetic import make_product

    folder = make_product(tmp_path, "washer", per_class=30)
    lines = ["image,product,label,defect_type,split,mask,source,group"]
    for i, path in enumerate(sorted((folder / "images").glob("*/*.png"))):
        defect = path.parent.name
        group = "tile-x" if (defect == "ok" and i < 3) or (defect == "spot" and i % 30 == 0) else f"p{i}"
        label = "ok" if defect == "ok" else "defect"
        lines.append(f"images/{defect}/{path.name},washer,{label},{defect},train,,,{group}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(folder)
    doubtful = ds.doubtful_good()
    assert len(doubtful) == 3
    ds.hold_out_calibration(0.01)
    assert not doubtful & {x.path for x in ds.split(CALIBRATION)}


def test_a_product_without_a_bank_has_no_cross_fit_folds():
    """steel-strip has no good parts, so no bank: calibrating it must not ask for its folds."""
    import torch

    from inspector.anomaly_fit import AnomalyBuild

    assert AnomalyBuild({}, {}, {}).fold_parts("steel-strip", None, torch.device("cpu")) == []


def test_fold_banks_hold_no_patch_of_their_held_out_parts_and_match_the_station_bank():
    """The warm-started fold banks: every row comes from a source image, none from the fold,
    and each is as large as the station's bank (the size the line is scored with)."""
    from pathlib import Path

    import torch

    from inspector.anomaly_fit import coreset_bank, cross_fit
    from inspector.dataset import Sample
    from inspector.settings import AnomalySettings

    g = torch.Generator().manual_seed(0)
    paths = [Path(f"/parts/p{i:02d}.png") for i in range(20)]
    # each image's patches carry its own index in column 0, so a bank row names its image
    pools = {p: torch.cat([torch.full((50, 1), float(i)), torch.randn(50, 7, generator=g)], 1)
             for i, p in enumerate(paths)}  # fmt: skip
    cfg = AnomalySettings(bank_size=120, calibration_folds=4)
    full_bank, rows = coreset_bank(list(pools.values()), cfg)
    calibration = [Sample(p, "washer", "ok", "calibration") for p in paths[:8]]
    folds = cross_fit(pools, calibration, cfg, rows)
    assert len(folds) == 4 and set().union(*(f.held for f in folds)) == set(paths[:8])
    for f in folds:
        images = {paths[int(v)] for v in f.bank[:, 0]}
        assert not images & f.held and images <= f.sources
        assert len(f.bank) == len(full_bank) == 100  # 10 % of 1,000 patches; a fold alone would get 90
        assert len(torch.unique(f.bank, dim=0)) == len(f.bank)  # no patch chosen twice


def _tiles(tmp_path, products: dict[str, int], lightings: int = 4):
    """Manifests of ``products`` (name -> good tiles), each tile shot under ``lightings``, plus
    ten defective tiles in train: the images are tiny, the split reads no pixel."""
    import numpy as np
    from PIL import Image

    from tests.helpers.synthetic import MANUAL

    for product, tiles in products.items():
        folder = tmp_path / product
        (folder / "images").mkdir(parents=True)
        lines = ["image,product,label,defect_type,split,mask,source,group"]
        for t in range(tiles + 10):
            kind = "ok" if t < tiles else "scratch"
            for k in range(lightings):
                name = f"images/{kind}_{t:03d}_{k}.png"
                Image.fromarray(np.full((8, 8, 3), t % 250, np.uint8)).save(folder / name)
                lines.append(f"{name},{product},{'ok' if kind == 'ok' else 'defect'},{kind},train,,,tile{t}")
        (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
        (folder / "manual.md").write_text(MANUAL.format(product=product))
    return [tmp_path / p for p in products]


def test_the_calibration_split_is_sized_in_physical_parts(tmp_path):
    """A promise of 5 % wants 2/alpha = 40 parts. Sized in images, 30 % of 400 images took 30
    tiles; a tile's lightings count once, so 40 tiles calibrate (and never more than half)."""
    ds = load_dataset(_tiles(tmp_path, {"tile": 100}))
    assert ds.hold_out_calibration(0.05, 0.3) == {"tile": 40}
    assert len({x.part for x in ds.split(CALIBRATION)}) == 40 and len(ds.split(CALIBRATION)) == 160
    again = load_dataset(tmp_path / "tile")
    assert again.hold_out_calibration(0.01, 0.3) == {"tile": 50}  # half of the 100 tiles at most


def test_each_product_is_calibrated_for_its_own_promise(tmp_path):
    """A line promises 1 %, but a product with few good parts can only back a looser promise:
    its own target sizes its calibration split and is the rate its thresholds promise."""
    s = Settings(home=tmp_path / "home")
    s.verdict.target_frr_by_product = {"few": 0.1}
    assert (s.verdict.target_frr_of("few"), s.verdict.target_frr_of("many")) == (0.1, 0.01)
    ds = load_dataset(_tiles(tmp_path, {"few": 80, "many": 80}))
    assert ds.hold_out_calibration(s.verdict.target_frr_of, 0.1) == {"few": 20, "many": 40}


def test_a_products_own_promise_is_read_from_the_environment_and_checked(monkeypatch, tmp_path):
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("INSPECTOR_VERDICT__TARGET_FRR_BY_PRODUCT", '{"magnetic-tile": 0.03}')
    assert Settings(home=tmp_path).verdict.target_frr_of("magnetic-tile") == 0.03
    monkeypatch.setenv("INSPECTOR_VERDICT__TARGET_FRR_BY_PRODUCT", '{"magnetic-tile": 3}')
    with pytest.raises(ValidationError, match="target_frr_by_product"):
        Settings(home=tmp_path)
