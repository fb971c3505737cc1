#!/usr/bin/env bash
# The packages resnet_viz needs that the lent GPU machine's Python (3.12, with torch) lacks, as wheels in .whl/,
# for benchmarks/gpu_check.sh to install there. Run once here, where pip can reach an index.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl captum plotly babel
ls -l .whl
