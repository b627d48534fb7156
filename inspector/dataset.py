"""Labelled images and their manuals, from either supported layout.

- Manifest layout (the shared data): ``<product>/manifest.csv`` with columns
  image,product,label,defect_type,split,mask,source, plus ``<product>/manual.md``.
- Folder layout: ``<product>/images/<defect_type>/*`` plus ``<product>/manual.md``; the split
  is assigned from a hash of the file name (70/15/15), so it never changes between runs.

Images of one physical part (several lightings or views) share a group: a ``group`` column in
the manifest, or ``groups.csv`` / ``tile_groups.csv`` (image,group) beside it. A group is
never split between the classifier's training and the calibration set, nor between the
cross-fit folds of the memory bank, so calibration sees parts the scoring model has not seen
(different frames of the same part would make good parts look too good). Crops cut from one
larger image (a board, a web of steel) name it in an ``origin`` column: they keep their own
labels, but move between training and calibration together, for the same reason.

A person's corrections of the source's labels live in ``corrections.csv`` beside them
(``inspector/corrections.py``) and override them for the images they name.

A root may be one product folder or a folder of product folders. Rows that cannot be used
(missing file, defect type the manual does not describe) are reported with file and reason.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from inspector.corrections import CORRECTIONS_FILE, read_corrections
from inspector.errors import DataError, ManualError
from inspector.manual import Manual, load_manual

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
SPLITS = ("train", "val", "test")
CALIBRATION = "calib"  # good parts held out of train: they set the verdict thresholds and nothing else


@dataclass(frozen=True)
class Sample:
    path: Path
    product: str
    defect_type: str  # "ok" or one of the manual's defect types
    split: str
    mask: Path | None = None
    source: str = ""  # the manifest's source column: where the image came from
    group: str = ""  # the physical part the image shows ("" = the image is its own part)
    origin: str = ""  # the larger image the image was cut from ("" = none): its crops share pixels

    @property
    def is_defect(self) -> bool:
        return self.defect_type != "ok"

    @property
    def part(self) -> str:
        return self.group or self.path.name

    @property
    def unit(self) -> str:
        """What stays whole between what a model learns from and what calibrates it: the image a
        crop was cut from, else the physical part. Crops of one board share its pixels and its
        look, so a calibration crop whose neighbours taught the bank can score lower than a new
        board's would, and the threshold then promises more than it keeps (pcb). Unlike a group,
        an origin shares no label: a defect-free crop of a board with a defect elsewhere is good."""
        return f"origin:{self.origin}" if self.origin else self.part


@dataclass(frozen=True)
class BadRow:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class Dataset:
    manuals: dict[str, Manual] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    def with_train(self, train: list[Sample]) -> Dataset:
        """The same dataset with its train split replaced (few-shot, a selection fold)."""
        return Dataset(self.manuals, train + [s for s in self.samples if s.split != "train"], self.bad)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def doubtful_good(self) -> set[Path]:
        """Good images of a physical part that other images show defective (a label that
        disagrees across lightings): neither a bank nor a calibration should trust them."""
        defective = {(s.product, s.group) for s in self.samples if s.group and s.is_defect}
        return {s.path for s in self.samples if not s.is_defect and (s.product, s.group) in defective}

    def hold_out_calibration(self, alpha: float | Callable[[str], float], share: float = 0.3) -> dict[str, int]:
        """Move good train parts of each product into the calibration split. -> parts per product.

        ``alpha``: the promised false-reject rate, or a product's own (``VerdictSettings.target_frr_of``).
        Enough parts for a split-conformal promise at it (2/alpha: the threshold is then not the
        single largest score) but at most half of the product's good train parts, and at least
        ``share`` of them. Counted in physical parts, as the promise counts them: a tile's six
        lightings are one part (sized in images, magnetic-tile calibrated on 35 of its 113 tiles).
        A product without defect images in train has no classifier to hold parts out of, so all
        its good parts calibrate: the memory bank cross-fits them (each is scored by a bank built
        without it). Whole units move (a physical part, or every good crop of one origin image),
        chosen by a stable hash, so reruns agree. An origin's defect crops stay in train: a
        classifier taught that they are defects scores their good neighbours higher if anything,
        which makes the threshold stricter, not looser.
        """
        moved: dict[str, int] = {}
        doubtful = self.doubtful_good()
        for product in self.products():
            train = [s for s in self.samples if s.product == product and s.split == "train"]
            good = [s for s in train if not s.is_defect and s.path not in doubtful]
            groups: dict[str, list[Sample]] = {}
            for s in good:
                groups.setdefault(s.unit, []).append(s)
            if len(groups) < 2:
                continue
            if not any(s.is_defect for s in train):
                paths = {s.path for s in good}
                self.samples = [replace(s, split=CALIBRATION) if s.path in paths else s for s in self.samples]
                moved[product] = len(groups)
                continue
            a = alpha(product) if callable(alpha) else alpha
            want = min(max(math.ceil(share * len(groups)), math.ceil(2 / a)), len(groups) // 2)
            order = sorted(groups, key=lambda g: hashlib.sha1(f"calib|{product}|{g}".encode()).hexdigest())
            chosen = {s.path for g in order[:want] for s in groups[g]}
            self.samples = [replace(s, split=CALIBRATION) if s.path in chosen else s for s in self.samples]
            moved[product] = want
        return moved

    def products(self) -> list[str]:
        return sorted(self.manuals)

    def fingerprint(self) -> str:
        """Hash of what was trained on (paths, labels, splits), recorded in the model card."""
        h = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: str(s.path)):
            h.update(f"{s.product}|{s.path.name}|{s.defect_type}|{s.split}\n".encode())
        return h.hexdigest()

    def merge(self, other: Dataset) -> None:
        clash = set(self.manuals) & set(other.manuals)
        if clash:
            raise DataError(f"product(s) {sorted(clash)} appear in more than one data folder")
        self.manuals.update(other.manuals)
        self.samples.extend(other.samples)
        self.bad.extend(other.bad)

    def check_bad_share(self, max_share: float) -> None:
        total = len(self.samples) + len(self.bad)
        if total and len(self.bad) / total > max_share:
            shown = "\n  ".join(map(str, self.bad[:10]))
            raise DataError(
                f"{len(self.bad)} of {total} rows are unusable (over the {max_share:.0%} allowed):\n  {shown}"
            )


def hash_split(name: str, fractions: tuple[float, float] = (0.70, 0.85)) -> str:
    u = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < fractions[0] else "val" if u < fractions[1] else "test"


def _groups(folder: Path) -> dict[str, str]:
    for name in ("groups.csv", "tile_groups.csv"):
        path = folder / name
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            if rows and len(rows[0]) >= 2:
                return {r[0]: r[1] for r in rows[1:] if len(r) >= 2}
    return {}


def _manifest_product(folder: Path, manual: Manual) -> Dataset:
    ds = Dataset(manuals={manual.product: manual})
    manifest = folder / "manifest.csv"
    groups = _groups(folder)
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"image", "defect_type", "split"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{manifest}: missing column(s) {sorted(missing)}")
        for i, row in enumerate(reader, start=2):
            where = f"{manifest}:{i} ({row.get('image')})"
            path = folder / (row.get("image") or "")
            defect = (row.get("defect_type") or "").strip()
            split = (row.get("split") or "").strip()
            if not row.get("image") or not path.is_file():
                ds.bad.append(BadRow(where, "image file missing"))
            elif defect != "ok" and defect not in manual.defects:
                ds.bad.append(BadRow(where, f"defect type '{defect}' is not described in {folder / 'manual.md'}"))
            elif split not in SPLITS:
                ds.bad.append(BadRow(where, f"split '{split}' is not one of {SPLITS}"))
            else:
                mask = folder / row["mask"] if row.get("mask") else None
                group = row.get("group") or groups.get(row["image"], "")
                source, origin = row.get("source") or "", (row.get("origin") or "").strip()
                ds.samples.append(Sample(path, manual.product, defect, split, mask, source, group, origin))
    return ds


def _folder_product(folder: Path, manual: Manual) -> Dataset:
    ds = Dataset(manuals={manual.product: manual})
    for class_dir in sorted(p for p in (folder / "images").iterdir() if p.is_dir()):
        defect = class_dir.name
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if defect != "ok" and defect not in manual.defects:
                ds.bad.append(BadRow(str(path), f"defect type '{defect}' is not described in the manual"))
            else:
                ds.samples.append(Sample(path, manual.product, defect, hash_split(f"{defect}/{path.name}")))
    return ds


def load_product(folder: Path) -> Dataset:
    folder = Path(folder)
    manual = load_manual(folder / "manual.md", folder.name)
    if (folder / "manifest.csv").is_file():
        return _corrected(_manifest_product(folder, manual), folder, manual)
    if (folder / "images").is_dir():
        return _corrected(_folder_product(folder, manual), folder, manual)
    raise DataError(f"{folder}: no manifest.csv and no images/<defect_type>/ folders")


def _corrected(ds: Dataset, folder: Path, manual: Manual) -> Dataset:
    """The product's samples with a person's corrections (``corrections.csv``) applied."""
    found, unreadable = read_corrections(folder)
    ds.bad += [BadRow(where, why) for where, why in unreadable]
    if not found:
        return ds
    source, held, samples = folder / CORRECTIONS_FILE, set(), []
    for s in ds.samples:
        image = s.path.relative_to(folder).as_posix() if s.path.is_relative_to(folder) else s.path.as_posix()
        c = found.get(image)
        if c is not None and c.defect_type != "ok" and c.defect_type not in manual.defects:
            ds.bad.append(
                BadRow(f"{source} ({image})", f"defect type '{c.defect_type}' is not described in the manual")
            )
        elif c is not None:
            s = replace(s, defect_type=c.defect_type, mask=s.mask if c.defect_type != "ok" else None)
        held.add(image)
        samples.append(s)
    ds.bad += [BadRow(f"{source} ({image})", "corrects an image the data does not hold") for image in set(found) - held]
    ds.samples = samples
    return ds


def _is_product(folder: Path) -> bool:
    return (folder / "manual.md").exists() or (folder / "manifest.csv").exists()


def product_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a product folder, else the product folders in it."""
    return [root] if _is_product(root) else sorted(p for p in root.iterdir() if p.is_dir() and _is_product(p))


def load_dataset(roots: list[Path] | Path, products: list[str] | None = None) -> Dataset:
    """Load every product under ``roots`` (optionally only ``products``)."""
    roots = [roots] if isinstance(roots, Path | str) else roots
    ds = Dataset()
    for root in map(Path, roots):
        if not root.is_dir():
            raise DataError(f"{root}: data folder not found")
        folders = product_folders(root)
        if not folders:
            raise DataError(f"{root}: no product folders (each needs manual.md and manifest.csv or images/)")
        for folder in folders:
            if products and folder.name not in products:
                continue
            try:
                ds.merge(load_product(folder))
            except ManualError as exc:
                raise DataError(str(exc)) from None
    if products:
        unknown = set(products) - set(ds.manuals)
        if unknown:
            raise DataError(f"unknown product(s) {sorted(unknown)}; found {ds.products()}")
    if not ds.samples:
        raise DataError(f"no usable images under {', '.join(map(str, roots))}")
    return ds
