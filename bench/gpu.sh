#!/usr/bin/env bash
# The whole GPU benchmark in one prepared script (about 4-5 minutes on one H100/H200-class card), then the
# measured tables are written into docs/performance.md between the gpu-bench markers.
#
#   bash bench/gpu.sh            # PYTHON=... to pick the interpreter (default: .venv/bin/python, else python3)
#
# Runs (full-size stand-in checkpoints written once; the astronaut photo and espeak-ng speech):
#   precision table (fp32/tf32/bf16/fp16 vs fp32 on the golden inputs); renderer alone at each precision
#   (10 s clip, batch from free memory); batch sizes 1/4/16 (bf16); with GFPGAN (fp32, bf16; 4 s clip);
#   1 GPU vs all N GPUs on a 60 s clip (split into segments); GPU memory vs clip length (10 s, 30 s, 60 s).
# A run that fails or times out is reported and skipped; the others still make the table.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
N=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ "${N:-0}" -lt 1 ]; then
    echo "bench/gpu.sh: no CUDA device visible; nothing measured" >&2
    exit 1
fi
WORK=$(mktemp -d /tmp/gpu_bench.XXXXXX)
RESULTS="$WORK/results"
mkdir -p "$RESULTS"
trap 'rm -rf "$WORK/checkpoints" "$WORK/face"' EXIT
echo "writing full-size stand-in checkpoints to $WORK"
"$PY" - "$WORK" <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from sadtalker.standin import write_standins
from sadtalker.face.standin import write_face_standins
work, ref = Path(sys.argv[1]), Path("..") / "shared" / "reference"
write_standins(work / "checkpoints", ref, small=False, sizes=(256,))
write_face_standins(work / "face" / "gfpgan" / "weights", ref, small=False)
PYEOF

run() {  # run LABEL TIMEOUT_S ARGS...: one bench/pipeline.py --json run into $RESULTS/LABEL.json
    local label=$1 limit=$2
    shift 2
    echo "== $label: $*"
    if timeout "$limit" "$PY" bench/pipeline.py --checkpoint-dir "$WORK/checkpoints" --face-dir "$WORK/face" \
            --json "$@" > "$WORK/$label.out" 2> "$WORK/$label.err"; then
        tail -n 1 "$WORK/$label.out" > "$RESULTS/$label.json"
    else
        echo "   failed or timed out (status $?): $(tail -n 3 "$WORK/$label.err")"
    fi
}

timeout 120 "$PY" -m bench.precision --device cuda --json > "$RESULTS/precision.json" 2> "$WORK/precision.err" \
    || { echo "precision table failed: $(tail -n 3 "$WORK/precision.err")"; rm -f "$RESULTS/precision.json"; }
for p in fp32 tf32 bf16 fp16; do
    run "render_${p}_10s" 60 --device cuda:0 --precision "$p" --seconds 10
done
for b in 1 4 16; do
    run "render_bf16_batch${b}" 60 --device cuda:0 --precision bf16 --seconds 10 --batch-size "$b"
done
run "gfpgan_fp32_4s" 90 --device cuda:0 --precision fp32 --seconds 4 --enhancer gfpgan --force-face
run "gfpgan_bf16_4s" 90 --device cuda:0 --precision bf16 --seconds 4 --enhancer gfpgan --force-face
run "memory_fp32_30s" 60 --device cuda:0 --precision fp32 --seconds 30
run "split_1gpu_60s" 90 --device cuda:0 --precision bf16 --seconds 60
if [ "$N" -gt 1 ]; then
    ALL=$(seq -s, -f 'cuda:%g' 0 $((N - 1)))
    run "split_${N}gpu_60s" 90 --device "$ALL" --precision bf16 --seconds 60
fi
"$PY" bench/gpu_report.py "$RESULTS"
echo "results kept in $RESULTS; docs/performance.md updated"
