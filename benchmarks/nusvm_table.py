"""Issue 10's scaling table on this machine in one command: every fit and predict row of RESULTS-nusvm.md's
corpus-scale sections, sertk interleaved with scikit-learn, each run a fresh process of ``scale_nusvm.py``.

    python benchmarks/nusvm_table.py OUT.jsonl                  # the whole table (about 1 h on a Zen 4 core)
    python benchmarks/nusvm_table.py OUT.jsonl --sizes 1000 4425 --reps 3
    python benchmarks/nusvm_table.py OUT.jsonl --summary        # the Markdown tables, from what OUT.jsonl holds

Why a driver: the table is ~40 processes over an hour, and the measurements that matter (ours against scikit-learn's
libsvm on the same CPU) must be interleaved and named by the CPU they ran on. This runs them in that order, appends
each result to ``OUT.jsonl`` as it comes (so a stopped table resumes: runs already there are skipped), and starts
the file with the machine (CPU, ISA, the BLAS kernel that runs), the commit and the date.

Per size: ``--reps`` rounds (default 3 up to 10 000, one above) of scikit-learn on one thread, sertk on one thread
(with ``--predict 1000 --twin``: its predict against scikit-learn's on the same model) and sertk on two threads.
At 50 000 and above scikit-learn fits once and saves its model, and ours is compared with it (``--ref``); budgets
are ``cache_size`` 1 GiB, 8 GiB at 50 000. Every command runs with OpenBLAS at its own kernel for the CPU
(``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset for that command only) and BLAS held to one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (1000, 4425, 10000, 20000, 50000)
PREDICT_M = 1000
# from this size scikit-learn fits once (20 min and more) and saves its model; ours are compared with that file
REF_FROM = 50000


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
    return env


def _machine() -> dict:
    """The header record: what ran (in a child with the benchmark's environment, so the BLAS kernel named is the one
    the runs use)."""
    code = "import json, sertk.machine as m; i = m.machine_info(torch=False); print(json.dumps({'machine': " \
           "m.describe(i), 'cpu': i.get('cpu')}, default=str))"
    info = json.loads(subprocess.run([sys.executable, "-c", code], env=_env(), check=True, capture_output=True,
                                     text=True).stdout)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return {"header": True, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "commit": head.stdout.strip() or None, "nproc": os.cpu_count(), **info}


def plan(sizes: list[int], reps: int | None, out: Path, ref_from: int = REF_FROM) -> list[tuple[str, list[str]]]:
    """(key, scale_nusvm.py arguments) for every run, in the order they run."""
    runs = []
    for n in sizes:
        big = n >= ref_from
        cache = ["--cache", "8192"] if big else []
        rounds = reps if reps is not None else (3 if n <= 10000 else 1)
        ref = out.with_name(f"{out.stem}-sklearn-{n}.npz")
        for r in range(rounds):
            if not big or r == 0:
                sk_extra = ["--save", str(ref)] if big else []
                runs.append((f"sklearn {n} 1 #{r}", ["sklearn", str(n), "1", *cache, *sk_extra]))
            ours_extra = ["--ref", str(ref)] if big else []
            runs.append((f"sertk {n} 1 #{r}", ["sertk", str(n), "1", *cache, "--predict", str(PREDICT_M), "--twin",
                                               *ours_extra]))
            runs.append((f"sertk {n} 2 #{r}", ["sertk", str(n), "2", *cache, *ours_extra]))
    return runs


def _records(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(out: Path, sizes: list[int], reps: int | None, ref_from: int = REF_FROM) -> None:
    done = {r["key"] for r in _records(out) if "key" in r}
    runs = plan(sizes, reps, out, ref_from)
    if all(key in done for key, _ in runs):
        return
    with out.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(_machine()) + "\n")  # at each start, so a table resumed elsewhere says so
        fh.flush()
        for i, (key, args) in enumerate(runs, 1):
            if key in done:
                continue
            load = os.getloadavg()[0]  # a run on a busy machine says so
            print(f"[{time.strftime('%H:%M:%S')}] {i}/{len(runs)} {key} (load {load:.2f})", file=sys.stderr,
                  flush=True)
            proc = subprocess.run([sys.executable, str(HERE / "scale_nusvm.py"), *args], env=_env(),
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{key} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            rec = json.loads(proc.stdout.strip().splitlines()[-1])
            # one line per run, as it ends: a stopped table loses one run
            fh.write(json.dumps({"key": key, "load_before": round(load, 2), **rec}) + "\n")
            fh.flush()


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f} s"


def _x(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.1f}×"


def summary(out: Path) -> str:
    recs = _records(out)
    heads = [r for r in recs if r.get("header")]
    runs = [r for r in recs if "key" in r]
    machines = "; ".join(dict.fromkeys(f"`{h['machine']}`" for h in heads))  # more than one: not one table
    commits = ", ".join(dict.fromkeys(str(h["commit"]) for h in heads))
    starts = ", ".join(h["date"] for h in heads) or "—"  # one per start: more than one, a resumed table
    lines = [f"Machine: {machines}; commit {commits}; started {starts} (`{out.name}`; medians, each run a fresh "
             "process)", "",
             "| n | budget | scikit-learn, 1 thread | sertk, 1 thread | vs scikit-learn | sertk, 2 threads | "
             "vs scikit-learn | 2 threads vs our 1 | same model | sertk kernel held as | sertk peak |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    pred = ["| training n | support vectors | test vectors | scikit-learn | sertk | speed-up | predictions equal | "
            "sertk, float64 path only | samples the screen left to float64 |",
            "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for n in sorted({r["n"] for r in runs}):
        sk = [r for r in runs if r["n"] == n and r["impl"] == "sklearn"]
        one = [r for r in runs if r["n"] == n and r["impl"] != "sklearn" and r["jobs"] == 1]
        two = [r for r in runs if r["n"] == n and r["impl"] != "sklearn" and r["jobs"] == 2]
        t_sk, t1, t2 = (_med([r["fit_s"] for r in rs]) for rs in (sk, one, two))
        ours = one + two
        if sk and ours:  # the same support set and iterations as libsvm, in every run of ours
            same = all(r["support_sha"] == sk[0]["support_sha"] and r["n_iter"] == sk[0]["n_iter"] for r in ours)
            refs = [r for r in ours if "dual_coef_max_rel" in r]
            rel = max((max(r["dual_coef_max_rel"], r["intercept_max_rel"]) for r in refs), default=None)
            same_s = ("yes" if same else "**no**") + (f" (≤ {rel:.1e} relative)" if rel is not None else "")
        else:
            same_s = "—"
        budget = f"{(ours or sk)[0]['cache_mb'] / 1024:g} GiB"
        modes = "/".join(dict.fromkeys(r["mode"] for r in ours)) or "—"
        peak = "/".join(f"{_med([r['peak_mb'] for r in rs]):.0f}" for rs in (one, two) if rs) + " MiB"
        lines.append(f"| {n} | {budget} | {_s(t_sk)} | {_s(t1)} | {_x(t_sk, t1)} | {_s(t2)} | {_x(t_sk, t2)} | "
                     f"{_x(t1, t2)} | {same_s} | {modes} | {peak} |")
        with_pred = [r for r in one if "sklearn_predict_s" in r]
        if with_pred:
            p_sk, p_us = _med([r["sklearn_predict_s"] for r in with_pred]), _med([r["predict_s"] for r in with_pred])
            equal = all(r["same_predictions"] and r.get("screen_same_labels", True) for r in with_pred)
            screened = [r for r in with_pred if "predict_float64_s" in r]  # runs from before the screen lack it
            p64 = _med([r["predict_float64_s"] for r in screened]) if screened else None
            rows = "/".join(dict.fromkeys(str(r["predict_float64_rows"]) for r in screened)) or "—"
            pred.append(f"| {n} | {with_pred[0]['n_sv']} | {with_pred[0]['predict_m']} | {_s(p_sk)} | {_s(p_us)} | "
                        f"{_x(p_sk, p_us)} | {'yes' if equal else '**no**'} | {_s(p64)} | {rows} |")
    return "\n".join(lines + [""] + pred)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the JSON-lines file the runs are appended to (and resumed from)")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--reps", type=int, help="rounds per size (default: 3 up to 10 000, 1 above)")
    ap.add_argument("--ref-from", type=int, default=REF_FROM,
                    help="from this size: scikit-learn once, saved, ours compared with it; 8 GiB budgets")
    ap.add_argument("--summary", action="store_true", help="print the Markdown tables of OUT and stop")
    a = ap.parse_args()
    if not a.summary:
        try:
            run(a.out, a.sizes, a.reps, a.ref_from)
        except KeyboardInterrupt:
            sys.exit(f"stopped; the runs that ended are in {a.out}: the same command goes on from there")
    print(summary(a.out))


if __name__ == "__main__":
    main()
