#!/usr/bin/env bash
# benchmarks/nusvm_device.sh OUT_DIR — issue 10's 200k row on a lent device machine's CPU (16 cores, 128 GiB): the
# fit that a 24 GiB development machine cannot hold (its largest class pair's matrix alone is 57.8 GB), in one call
# of under 9 minutes, so that a second try fits the 15 minutes a task is lent. The GPU is not used.
#
# What it does, each step under its own limit, none starting after DEADLINE_S (default 540 s) is spent:
#   1. builds sertk's compiled ν-SVM core in place (the device image has Cython, NumPy, SciPy, scikit-learn and
#      threadpoolctl: /work/.library/device/KINDS.md);
#   2. records the machine (CPU, ISA, BLAS kernel: sertk.machine) and the memory there is;
#   3. fits n = 200,000 (benchmarks/scale_nusvm.py, the RESULTS rows' generator and settings) on every core with a
#      64 GiB budget, or 70 % of the available memory if that is less (below the largest pair's 55.1 GiB matrix the
#      fit would take the row cache, which cannot finish in time: then it says so and stops), with OpenBLAS at its
#      own kernel for the CPU (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command only) and progress
#      every 15 s, so that a run cut by the limit still says how far it got;
#   4. as time allows, n = 100,000 on every core (the 2-core row of RESULTS is 519.5 s).
#
# Out: OUT_DIR/nusvm_device.log (everything), nusvm_200k.json, nusvm_100k.json (one JSON line each, as the RESULTS
# rows).
#
# On the device machine, from the repository root:
#     bash benchmarks/nusvm_device.sh "$OUT"
# Rehearsal here (small sizes, same commands):
#     PYTHON=python SERTK_NUSVM_N=12000 SERTK_NUSVM_N2=6000 bash benchmarks/nusvm_device.sh /tmp/rehearsal
set -uo pipefail

OUT=${1:?usage: benchmarks/nusvm_device.sh OUT_DIR}
PY=${PYTHON:-python3}
N=${SERTK_NUSVM_N:-200000}
N2=${SERTK_NUSVM_N2:-100000}
DEADLINE_S=${SERTK_NUSVM_DEADLINE_S:-540}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/nusvm_device.log") 2>&1
cd "$REPO" || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
JOBS=$(nproc)
FAILED=()

# run LIMIT_S NAME CMD...: one step under a limit cut to what is left of DEADLINE_S; a failure is recorded
run() {
    local limit=$1 name=$2
    shift 2
    local left=$((DEADLINE_S - SECONDS))
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        echo "!! $name skipped: the ${DEADLINE_S} s are spent" >&2; FAILED+=("$name (skipped)"); return 1
    fi
    # to stderr: a step's stdout may be its JSON file
    echo >&2; echo "== $(date -u +%H:%M:%S) [${SECONDS}s] $name (limit ${limit} s)" >&2
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    [ $rc -ne 0 ] && { echo "!! $name failed (exit $rc; 124: over its ${limit} s limit)" >&2; FAILED+=("$name"); }
    return $rc
}

if ! run 150 "build the nu-SVM core" "$PY" setup.py -q build_ext --inplace; then
    echo "!! no core, nothing to measure"; exit 1
fi

echo; echo "== machine"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" -c "import sertk.machine as m; print(m.describe())"
nproc; grep -E "MemTotal|MemAvailable" /proc/meminfo; uptime
env | grep OPENBLAS || echo "(no OPENBLAS_* in the environment)"

avail_mb=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo)
cache_mb=$((avail_mb * 70 / 100))
[ "$cache_mb" -gt 65536 ] && cache_mb=65536
pair_mb=$("$PY" - "$N" <<'EOF'
import sys
import numpy as np
sys.path.insert(0, "benchmarks")
from sertk.svm import _nusvm
rng = np.random.default_rng(1)  # the class sizes of make_embeddings(N, seed=1)
counts = np.bincount(rng.choice(4, size=int(sys.argv[1]), p=[0.25, 0.35, 0.2, 0.2]), minlength=4)
print(int(_nusvm.plan_kernel(counts.astype(np.int32))["pair_bytes"] / 2**20) + 1)
EOF
)
echo "memory available ${avail_mb} MiB; budget ${cache_mb} MiB; the largest pair's matrix ${pair_mb} MiB"

if [ "$cache_mb" -lt "$pair_mb" ]; then
    echo "!! n=$N: the budget cannot hold one pair's matrix; the row cache would not finish in time: not run"
    FAILED+=("n=$N (memory)")
else
    run 480 "fit n=$N, $JOBS threads, cache ${cache_mb} MiB" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
        "$PY" benchmarks/scale_nusvm.py sertk "$N" "$JOBS" --cache "$cache_mb" --log 15 >"$OUT/nusvm_200k.json"
    cat "$OUT/nusvm_200k.json"
fi
run 300 "fit n=$N2, $JOBS threads, cache ${cache_mb} MiB" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$PY" benchmarks/scale_nusvm.py sertk "$N2" "$JOBS" --cache "$cache_mb" --log 15 >"$OUT/nusvm_100k.json" &&
    cat "$OUT/nusvm_100k.json"

echo; echo "== done in ${SECONDS} s; failed: ${FAILED[*]:-none}"
