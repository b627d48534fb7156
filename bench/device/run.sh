#!/usr/bin/env bash
# On a lent GPU machine (see pack.sh): the service benchmark on CUDA at a few batch sizes, each
# result as JSON under $OUT. No network there: the wheels come from .device/whl.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 INSPECTOR_WEIGHTS_DIR="$PWD/.device/weights"
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, timm, transformers; print('torch', torch.__version__, 'timm', timm.__version__)" | tee -a "$out/gpu.txt"
for batch in ${BATCHES:-64 256}; do
    python3 bench/serve.py --model .device/model --images .device/images --cache .device/cache --device cuda \
        --batch "$batch" --count "${COUNT:-20000}" --host-count "${COUNT:-20000}" --host-batch "$batch" \
        --clients "${CLIENTS:-8}" | tee "$out/serve-b$batch.json"
done
