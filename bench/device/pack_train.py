"""Packs into .device/train/ (git-ignored) what bench/device/train.sh needs to train on a lent GPU
machine, which reaches no package index and carries at most 64 MiB:

- each data folder's products, with only the images and masks their manifests name, copied in
  and named relative to the product folder (a manifest may point outside it, as the honest pcb
  folder's does into ../shared);
- the converted EfficientNet-Lite0 weights (the wheel that holds them stays behind);
- each manual's class-description embeddings in the home's cache, so the 90 MB text model stays
  behind (training makes it only for a manual not in the cache);
- wheels of what training imports that the machine's image lacks, built for its Python 3.12.

    python bench/device/pack_train.py --data /tmp/pcbh
    then, with the device tool: run(command="SEEDS='1 2' ARGS='...' bash bench/device/train.sh", carry=[".device"])
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inspector.dataset import load_dataset, product_folders  # noqa: E402
from inspector.settings import Settings  # noqa: E402
from inspector.training_data import prepare  # noqa: E402
from models.encoders.weights import default_cache_dir  # noqa: E402

# what `inspector train` imports beyond the image's torch, timm, transformers, numpy, scipy, sklearn...
WHEELS = "sqlalchemy pydantic pydantic-core pydantic-settings python-dotenv annotated-types typing-inspection"


def copy_product(folder: Path, dest: Path) -> int:
    """Copy one product folder with the files its manifest names; -> bytes copied."""
    dest.mkdir(parents=True)
    renamed: dict[str, str] = {}
    taken: dict[str, Path] = {}

    def place(name: str) -> str:
        if not name:
            return name
        src = Path(name) if Path(name).is_absolute() else folder / name
        # inside the folder a file keeps its name; from outside, its last folder and file name
        rel = name if not Path(name).is_absolute() else f"images/{src.parent.name}/{src.name}"
        if taken.setdefault(rel, src) != src:
            raise SystemExit(f"{folder}: two files would be packed as {rel}")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest / rel)
        renamed[name] = rel
        return rel

    with open(folder / "manifest.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = [{**r, "image": place(r["image"]), "mask": place(r.get("mask") or "")} for r in reader]
        fields = reader.fieldnames or []
    with open(dest / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: r[k] for k in fields} for r in rows)
    shutil.copyfile(folder / "manual.md", dest / "manual.md")
    for groups in ("groups.csv", "tile_groups.csv"):  # keyed by the manifest's image names
        if (folder / groups).is_file():
            with open(folder / groups, newline="") as f:
                rows = [{**r, "image": renamed.get(r["image"], r["image"])} for r in csv.DictReader(f)]
            with open(dest / groups, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["image", "group"])
                w.writeheader()
                w.writerows(rows)
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, action="append", required=True, help="a data folder (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / ".device" / "train")
    args = ap.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    sizes = {}
    for i, root in enumerate(args.data):
        for folder in product_folders(root):
            sizes[folder.name] = copy_product(folder, args.out / "data" / f"{i}-{root.name}" / folder.name)
    roots = sorted((args.out / "data").iterdir())
    load_dataset(roots)  # every packed manifest still reads

    prepare(Settings(home=args.out / "home"), roots)  # embeds every manual into the home's cache
    shutil.rmtree(args.out / "home" / "cache" / "features", ignore_errors=True)
    weights = args.out / "weights"
    weights.mkdir()
    for f in default_cache_dir().glob("tf_efficientnet_lite0.*"):
        shutil.copyfile(f, weights / f.name)

    pins = [f"{name}=={version(name)}" for name in WHEELS.split()]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux2014_x86_64", "-d", str(args.out / "whl"), *pins],
        check=True,
    )  # fmt: skip
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print({"products_bytes": sizes, "total_mib": round(total / 2**20, 1), "data": [str(r) for r in roots]})
    if total > 60 * 2**20:
        sys.exit("over 60 MiB: the device tool carries at most 64 MiB with the working tree")


if __name__ == "__main__":
    main()
