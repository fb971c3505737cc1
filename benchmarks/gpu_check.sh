#!/usr/bin/env bash
# Every GPU check in one run that fits a device call (10 minutes): the gpu tests, the default 3-seed race, the
# fused-against-unfused race benchmark and the landscape grid against bare forwards. Logs go to $OUT (or
# ./gpu-check). Prepare once with `bash tools/gpu_wheels.sh`, then run there with `.whl` carried:
#   bash benchmarks/gpu_check.sh
# A dry run on the CPU checks the script itself: DEVICE=cpu STEPS=2 RACE_STEPS=10 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
device=${DEVICE:-cuda}
steps=${STEPS:-100}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

check() {  # name, seconds at most, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most $limit s): $*"
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$out/$name.log"
  echo "== $name: exit $rc"
}

{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$out/machine.txt"
race_steps=()
[ -n "${RACE_STEPS:-}" ] && race_steps=(--steps "$RACE_STEPS")
check gpu-tests 150 "$py" -m pytest -q -p no:cacheprovider tests/test_gpu.py
check race-3-seeds 120 "$py" -m resnet_viz race --device "$device" "${race_steps[@]}" --out "$out/race-3-seeds.json"
check bench-race-seeds 200 "$py" benchmarks/bench_race.py --seeds --device "$device" --steps "$steps" --rounds 1
check bench-landscape 100 "$py" benchmarks/bench_landscape.py --device "$device" --rounds 3
