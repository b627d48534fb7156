"""The dependency direction (dashboard -> inspector -> models) is the one rule; CI checks it here."""

import shutil
import subprocess
import sys
from pathlib import Path

import models

ROOT = Path(__file__).resolve().parents[1]


def test_models_resolves_to_this_repository():
    assert Path(models.__file__).resolve().is_relative_to(ROOT)  # "models" is a generic name


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
