"""Label corrections: a person's judgement of a training image, kept beside the data it corrects.

The source's labels (``manifest.csv`` or the image folders) are never edited. ``corrections.csv``
in the product folder overrides the defect type of the images it names for every later
training, evaluation and retraining on that folder, and says who decided it and when. The
dashboard writes it for the good-labelled calibration parts a reject threshold stands on: a
part that is in fact defective raises the threshold for every part, and only a person looking
at it can tell.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from inspector.errors import DataError, ManualError
from inspector.manual import load_manual

CORRECTIONS_FILE = "corrections.csv"
FIELDS = ["image", "defect_type", "reviewer", "created_at", "comment"]
MAX_COMMENT = 500


@dataclass(frozen=True)
class Correction:
    image: str  # relative to the product folder, as the manifest names it
    defect_type: str  # "ok" or one of the manual's defect types
    reviewer: str
    created_at: str
    comment: str = ""


def read_corrections(folder: Path) -> tuple[dict[str, Correction], list[tuple[str, str]]]:
    """-> (image -> its latest correction, (where, why) for each row that cannot be read)."""
    path = Path(folder) / CORRECTIONS_FILE
    if not path.is_file():
        return {}, []
    found: dict[str, Correction] = {}
    bad: list[tuple[str, str]] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"image", "defect_type"} <= set(reader.fieldnames or []):
            return {}, [(str(path), "needs the columns image and defect_type")]
        for i, row in enumerate(reader, start=2):
            image, defect = (row.get("image") or "").strip(), (row.get("defect_type") or "").strip()
            if not image or not defect:
                bad.append((f"{path}:{i}", "image or defect_type empty"))
                continue
            found[image] = Correction(
                image, defect, row.get("reviewer") or "", row.get("created_at") or "", row.get("comment") or ""
            )
    return found, bad


def product_folder(image: Path) -> Path:
    """The product folder an image belongs to: the nearest folder above it with a manual.md."""
    for folder in Path(image).resolve().parents:
        if (folder / "manual.md").is_file():
            return folder
    raise DataError(f"{image}: not inside a product folder (no manual.md above it)")


def add_correction(image: Path, defect_type: str, reviewer: str, comment: str = "") -> Correction:
    """Append a correction for ``image`` to its product folder's corrections.csv (created with a
    header when missing; a later row for the same image wins). The defect type must be the
    manual's, or "ok"."""
    return add_corrections([image], defect_type, reviewer, comment)[0]


def add_corrections(images: list[Path], defect_type: str, reviewer: str, comment: str = "") -> list[Correction]:
    """``add_correction`` for several images: all are checked before any is written."""
    checked = [_checked(Path(image), defect_type) for image in images]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    comment = " ".join(comment.split())[:MAX_COMMENT]
    out = []
    for folder, image in checked:
        c = Correction(image, defect_type, reviewer, stamp, comment)
        path = folder / CORRECTIONS_FILE
        try:
            new = not path.is_file()
            with open(path, "a", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                if new:
                    w.writerow(FIELDS)
                w.writerow([c.image, c.defect_type, c.reviewer, c.created_at, c.comment])
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise DataError(f"{path}: cannot be written ({exc.strerror or exc})") from None
        out.append(c)
    return out


def _checked(image: Path, defect_type: str) -> tuple[Path, str]:
    """-> (its product folder, the image relative to it), or a DataError saying what is wrong."""
    if not image.is_file():
        raise DataError(f"{image}: no such image")
    folder = product_folder(image)
    try:
        manual = load_manual(folder / "manual.md", folder.name)
    except ManualError as exc:
        raise DataError(str(exc)) from None
    if defect_type != "ok" and defect_type not in manual.defects:
        known = ", ".join(["ok", *manual.defects])
        raise DataError(f"'{defect_type}' is not a defect type of {manual.product} ({known})")
    return folder, image.resolve().relative_to(folder).as_posix()


def correction_for(image: Path) -> Correction | None:
    """The correction that stands for ``image`` now, if any (None also when it is not in a product folder)."""
    try:
        folder = product_folder(image)
    except DataError:
        return None
    found, _ = read_corrections(folder)
    return found.get(Path(image).resolve().relative_to(folder).as_posix())
