#!/usr/bin/env bash
# benchmarks/nusvm_resumable.sh DIR [N] [JOBS] [CACHE_MB] — one segment of a ν-SVM fit longer than a session
# (issue 10's 200k row on a 24 GiB development machine: hours from a row cache). Each call runs
# benchmarks/scale_nusvm.py with --checkpoint DIR/ckpt, so it resumes where the last segment stopped: solved pairs
# from the file, the pair being solved from its solver's state (kept every 60 s; a killed segment loses at most
# that). Everything goes to DIR/log: a header per segment (time, commit, CPU), progress every 60 s and, from the
# segment that finishes, the JSON line (its fit_s is that segment's share). `--summary` adds the segments up.
#
#     setsid nohup bash benchmarks/nusvm_resumable.sh /work/run200k 200000 2 14336 > /dev/null 2>&1 &
#     bash benchmarks/nusvm_resumable.sh /work/run200k --summary
#
# OpenBLAS runs at its own kernel for the CPU (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for this command only);
# the data are float32 values (--float32), as embeddings are.
set -uo pipefail
DIR=${1:?usage: benchmarks/nusvm_resumable.sh DIR [N JOBS CACHE_MB | --summary]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
if [ "${2:-}" = "--summary" ]; then
    exec "$PY" - "$DIR/log" <<'PYEOF'
import json, re, sys
segs, cur = [], None
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("# segment start"):
        cur = {"start": line.split()[3], "head": line.split()[5], "cpu": line.split(" cpu ", 1)[1].strip(),
               "fit_s": None, "last": None, "done": None}
        segs.append(cur)
    elif cur is not None and (m := re.match(r"\[\s*([\d.]+) s\] .*?(\d+)/(\d+) sub-problems", line)):
        cur["last"], cur["done"] = float(m.group(1)), f"{m.group(2)}/{m.group(3)}"
    elif cur is not None and line.startswith("{"):
        cur["fit_s"], cur["json"] = json.loads(line)["fit_s"], json.loads(line)
total = 0.0
for s in segs:
    t = s["fit_s"] if s["fit_s"] is not None else s["last"] or 0.0  # a killed segment: its last progress line
    total += t
    print(f"{s['start']}  {s['head']}  {t:8.0f} s  {'finished' if s['fit_s'] is not None else 'stopped'} at "
          f"{s['done']}  {s['cpu']}")
print(f"total fit time {total:.0f} s ({total / 3600:.2f} h) over {len(segs)} segments "
      "(a stopped segment counts to its last progress line, up to 60 s short)")
if segs and segs[-1]["fit_s"] is not None:
    print(json.dumps(segs[-1]["json"]))
PYEOF
fi
N=${2:-200000}
JOBS=${3:-2}
CACHE=${4:-14336}
mkdir -p "$DIR/ckpt"
cd "$REPO" || exit 1
{
    echo "# segment start $(date -u +%FT%TZ) head $(git rev-parse --short HEAD) cpu $(lscpu | sed -n 's/^Model name: *//p')" \
         "family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), $(nproc) cores," \
         "$(free -g | awk '/^Mem:/ {print $2}') GiB; n $N jobs $JOBS cache $CACHE MiB"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONUNBUFFERED=1 \
        PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" benchmarks/scale_nusvm.py sertk "$N" "$JOBS" \
        --cache "$CACHE" --float32 --log 60 --checkpoint "$DIR/ckpt" --save "$DIR/model.npz"
    echo "# segment end $(date -u +%FT%TZ) rc $?"
} >> "$DIR/log" 2>&1
