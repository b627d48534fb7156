#!/usr/bin/env bash
# On a lent GPU machine (see pack_train.py): `inspector train` over the packed data folders, one
# run per seed while BUDGET seconds last (a seed starts only if the time left exceeds the last
# seed's); under $OUT each run's JSON and log, times.jsonl, and the GPU with its memory every 5 s.
#   SEEDS='1 2' BUDGET=540 ARGS='--product pcb --mode finetune --input-size 224 --trainable-stages 4' \
#       bash bench/device/train.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
pack=.device/train
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $pack/whl/*.whl \
    || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 INSPECTOR_WEIGHTS_DIR="$PWD/$pack/weights"
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, 'cuda', torch.cuda.is_available())" \
    | tee -a "$out/gpu.txt"
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -l 5 >> "$out/gpu.txt" &
data=()
for d in "$pack"/data/*; do data+=(--data "$d"); done
home=/tmp/home  # one for every seed: the manuals' embeddings, and the frozen stages' outputs once made
rm -rf "$home" && cp -r "$pack/home" "$home"
begin=$(date +%s) last=0
for seed in ${SEEDS:-0}; do
    left=$(( ${BUDGET:-3000} - ($(date +%s) - begin) ))
    if (( left < last + last / 10 + 30 )); then echo "seed $seed not started: ${left}s left"; continue; fi
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout "$left" python3 -m inspector train "${data[@]}" ${ARGS:-} --seed "$seed" --home "$home" \
        --out "$home/models/s$seed" --json "$out/train-s$seed.json" > "$out/log-s$seed.txt" 2>&1
    rc=$? last=$(( $(date +%s) - start ))
    echo "{\"seed\": $seed, \"rc\": $rc, \"seconds\": $last}" | tee -a "$out/times.jsonl"
    tr '\r' '\n' < "$out/log-s$seed.txt" | grep -v '^\s*$' | tail -4
done
