#!/usr/bin/env bash
# One prepared command for a lent CUDA machine (about 6 minutes, under 8): what the GPU does
# with our training engine, every number printed with the device named, and a copy of each
# benchmark's output under $OUT (the device tool fetches it back).
#
#   bash benchmarks/device-check.sh          # from the repository root, python3 with torch + CUDA
#
# It needs only torch, numpy, pandas, PyYAML and scikit-learn (the digits workload): the GPU
# machines here have those but not Ray, Optuna or SQLAlchemy, so the Ray launch of a packed
# study (benchmarks/packing.py) is left to a machine that has them; docs/benchmarks.md says so.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-check}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: the same steps here, to try the script before a device's minutes are spent
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
failed=0

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, keep its output, note a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s)"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local code=${PIPESTATUS[0]}
    if [ "$code" -ne 0 ]; then echo "!! $name: exit $code"; failed=1; fi
}

if [ "$DEVICE" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'on', torch.cuda.get_device_name(0))" \
        | tee -a "$OUT/device.txt" || exit 1
fi
# pack invariance on the GPU, then what a lone run and a pack of 8 cost per step there
step pack_invariance 150 "$PYTHON" -m benchmarks.pack_invariance --device "$DEVICE" --check --steps 300 --repeats 2
# achieved GFLOP/s per workload, alone and in a pack of 64, beside the device's matrix-product peak
step gflops 120 "$PYTHON" -m benchmarks.gflops --device "$DEVICE" --steps 200 --repeats 2 --pack 64
# GradNorm's step against equal weights' (toy T=2, T=10, digits)
step step_time 150 "$PYTHON" -m benchmarks.step_time --device "$DEVICE" --steps 500 --repeats 2
# packed DWA, RLW and FAMO against the same runs one after another
step packed_balancers 120 "$PYTHON" -m benchmarks.packed_balancers --device "$DEVICE" --runs 24 --steps 300
exit $failed
