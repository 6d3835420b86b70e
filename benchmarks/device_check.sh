#!/usr/bin/env bash
# The real model on one GPU in one command, for a short device lease (at most 8 minutes in all):
#   1. builds real-size random-weight checkpoints on the GPU (tools/build_realsize_checkpoints.py, fp16 files:
#      they serve the bf16 and fp16 runs), both stages and Depth Anything V2 Large;
#   2. runs benchmarks/device_check.py within the time left: both stages at 256x512 x 25 frames x 25 steps in bf16
#      and fp16 (seconds, peak VRAM, TFLOP/s), torch.compile, a 12 GB VRAM cap, the 1080p host-side cost and
#      512x1024. Every table is printed as soon as it is measured; steps that would not fit are reported skipped.
#
#   benchmarks/device_check.sh                   # on the GPU machine
#   benchmarks/device_check.sh --cpu --small     # here: every step on the CPU at test sizes (checks the script)
#
# Options: --cpu, --small, --out DIR (default $TMPDIR/diffusion-vas-device-check; the checkpoints are ~8 GB, or a
# few MB with --small), --budget SECONDS (default 480). Uses $PYTHON (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
BUDGET=480
OUT="${TMPDIR:-/tmp}/diffusion-vas-device-check"
DEVICE=cuda
ARCHITECTURE=real
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) DEVICE=cpu; EXTRA+=(--cpu) ;;
    --small) ARCHITECTURE=small; EXTRA+=(--small --compile-backend aot_eager) ;;
    --out) OUT="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    *) echo "device_check.sh: unknown option $1 (use --cpu, --small, --out DIR, --budget SECONDS)" >&2; exit 2 ;;
  esac
  shift
done

START=$(date +%s)
if ! "$PYTHON" -c "import diffusion_vas, diffusers, transformers, safetensors" 2>/dev/null; then
  echo "device_check.sh: $PYTHON cannot import the pack; install it first: $PYTHON -m pip install -e ." >&2
  exit 1
fi

DEADLINE=$((START + BUDGET - 10))   # 10 s to spare for the exit
export PYTHONUNBUFFERED=1           # every table reaches the log as soon as it is printed

echo "== building $ARCHITECTURE checkpoints on $DEVICE into $OUT"
timeout $((DEADLINE - $(date +%s))) "$PYTHON" tools/build_realsize_checkpoints.py --out "$OUT" --device "$DEVICE" \
  --variants fp16 --architecture "$ARCHITECTURE"
echo "== built in $(( $(date +%s) - START )) s"

LEFT=$((DEADLINE - $(date +%s)))
if [ "$LEFT" -le 0 ]; then
  echo "device_check.sh: no time left after building the checkpoints" >&2
  exit 1
fi
timeout "$LEFT" "$PYTHON" benchmarks/device_check.py --models "$OUT" --deadline "$DEADLINE" ${EXTRA[@]+"${EXTRA[@]}"}
echo "== device check done in $(( $(date +%s) - START )) s"
