#!/usr/bin/env bash
# Packs into .device/ (git-ignored) what bench/device/run.sh needs on a lent GPU machine, which
# reaches no package index: wheels of the service's dependencies that the machine's image lacks
# (its image has torch, timm, transformers, OpenCV, numpy, scipy, httpx...), the demo model, the
# converted backbone weights, the manuals' cached embeddings (so the 90 MB text model stays
# behind) and 64 demo cells. About 45 MB; the device tool carries at most 64 MiB.
#
#   .venv/bin/inspector demo --quiet && bash bench/device/pack.sh
#   then, with the device tool: run(command="bash bench/device/run.sh", carry=[".device"])
set -euo pipefail
cd "$(dirname "$0")/../.."
home=${INSPECTOR_HOME:-var}
weights=${INSPECTOR_WEIGHTS_DIR:-$HOME/.cache/inspector/weights}
out=.device
[ -f "$home/models/current/card.json" ] || { echo "no demo model in $home: run 'inspector demo' first" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out/whl" "$out/images" "$out/weights" "$out/cache"

# the versions this checkout runs with, built for the machine's Python 3.12
missing="sqlalchemy alembic mako pydantic pydantic-core pydantic-settings python-dotenv annotated-types
typing-inspection fastapi starlette opentelemetry-api python-multipart uvicorn paho-mqtt"
pins=$(.venv/bin/python - $missing <<'PY'
import sys
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))
PY
)
# shellcheck disable=SC2086
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$out/whl" $pins

cp -r "$home/models/current" "$out/model"
cp "$weights"/tf_efficientnet_lite0.* "$out/weights/"
cp -r "$home/cache/text" "$out/cache/text"
find "$home/demo/solar-cell-mono/images" -name '*.png' | sort | head -64 | xargs cp -t "$out/images"
du -sh "$out"
