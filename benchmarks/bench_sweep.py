"""A sweep of 24 classifier configurations on cached embeddings: the local pool (2 workers) against sequential.

Issue 12's target: at least 1.7x faster with the pool on 2 cores. Work per run is sized so that the pool's start
(two spawned interpreters importing sertk) is amortised: a synthetic corpus of ``--files`` short tones (4 classes,
8 speakers) in the ``csv`` dataset, embedded once with ``handcrafted`` into a fresh cache before anything is timed;
each run is ``nusvm`` under 5-fold cross-validation (5 fits on 80 % of the files), one of ν ∈ {0.1, 0.2, 0.3, 0.4}
× γ ∈ {scale, 0.001, 0.003, 0.01, 0.03, 0.1}. Both sides go through :func:`sertk.experiment.sweep.run_sweep` into fresh
sweep folders: ``jobs=1`` runs the 24 runs one after the other in this process (no start-up cost at all), ``jobs=2``
in a pool of 2 spawned workers. Rounds interleave sequential and pool, so both see the same machine load.

Run (record the output in benchmarks/RESULTS-distributed.md, section "Sweeps"; needs the 2 cores free)::

    python benchmarks/bench_sweep.py                    # 3000 files, 3 rounds
    python benchmarks/bench_sweep.py --files 600 --rounds 1 --json benchmarks/results/sweep-small.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

LABELS = {"ang": 330.0, "hap": 520.0, "neu": 220.0, "sad": 150.0}
NUS = [0.1, 0.2, 0.3, 0.4]
GAMMAS = ["scale", 0.001, 0.003, 0.01, 0.03, 0.1]


def write_corpus(root: Path, n_files: int, seconds: float = 0.4, seed: int = 0) -> Path:
    """Noisy tones whose pitch depends on the label and the speaker, listed in manifest.csv."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True)
    t = np.arange(int(seconds * 16000)) / 16000
    rows = ["path,label,speaker"]
    for i in range(n_files):
        label = list(LABELS)[i % len(LABELS)]
        speaker = (i // len(LABELS)) % 8
        f0 = LABELS[label] * (1 + 0.08 * rng.standard_normal()) * (1 + 0.03 * speaker)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.3 * rng.standard_normal()) \
            + 0.05 * rng.standard_normal(t.size)
        name = f"audio/u{i:05d}.wav"
        sf.write(root / name, wave.astype(np.float32), 16000, subtype="PCM_16")
        rows.append(f"{name},{label},spk{speaker}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def sweep_data(corpus: Path, cache: Path) -> dict:
    return {"dataset": {"name": "csv", "root": str(corpus)}, "featurizer": {"name": "handcrafted"},
            "classifier": {"name": "nusvm"}, "protocol": {"name": "kfold", "options": {"n_splits": 5}},
            "plots": False, "save_model": False, "cache_dir": str(cache),
            "axes": {"classifier.nu": NUS, "classifier.gamma": GAMMAS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=3000, help="synthetic utterances (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side, interleaved (default 3)")
    parser.add_argument("--jobs", type=int, default=2, help="pool size (default 2)")
    parser.add_argument("--json", type=Path, help="write the numbers and the machine record here")
    args = parser.parse_args(argv)

    os.environ["SERTK_LOAD_PLUGINS"] = ""
    from sertk.experiment.sweep import plan_sweep, prepare_embeddings, run_sweep
    from sertk.machine import describe, machine_info

    work = Path(tempfile.mkdtemp(prefix="sertk-bench-sweep-"))
    os.environ["SERTK_HOME"] = str(work / "home")
    t = time.perf_counter()
    corpus = write_corpus(work / "corpus", args.files)
    data = sweep_data(corpus, work / "cache")
    embedded = prepare_embeddings(plan_sweep(data, out=work / "probe").runs[0].config)
    prepare_s = time.perf_counter() - t
    print(f"corpus of {args.files} files written and embedded in {prepare_s:.1f} s: {embedded}", file=sys.stderr)

    times: dict[str, list[float]] = {"sequential": [], f"pool-{args.jobs}": []}
    accuracies: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for side, jobs in (("sequential", 1), (f"pool-{args.jobs}", args.jobs)):
            plan = plan_sweep(data, out=work / f"{side}-{round_}")
            start = time.perf_counter()
            result = run_sweep(plan, jobs=jobs)
            elapsed = time.perf_counter() - start
            if result.failed:
                raise SystemExit(f"{len(result.failed)} run(s) failed, e.g. {result.failed[0].error}")
            times[side].append(elapsed)
            accuracies[side] = [o.metrics["accuracy"] for o in result.outcomes]
            print(f"round {round_ + 1}: {side:12s} {elapsed:7.2f} s for {len(plan.runs)} runs", file=sys.stderr)
    assert accuracies["sequential"] == accuracies[f"pool-{args.jobs}"], "the pool changed a result"
    medians = {side: statistics.median(values) for side, values in times.items()}
    speedup = medians["sequential"] / medians[f"pool-{args.jobs}"]
    summary = {
        "benchmark": "sweep of 24 nusvm configurations (5-fold CV) on cached handcrafted embeddings",
        "files": args.files, "runs": len(NUS) * len(GAMMAS), "rounds": args.rounds, "jobs": args.jobs,
        "prepare_s": round(prepare_s, 2), "times_s": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
        "median_s": {k: round(v, 3) for k, v in medians.items()}, "speedup": round(speedup, 3),
        "target": 1.7, "load_average": os.getloadavg(), "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(), "machine": machine_info(torch=False),
    }
    print(f"machine: {describe(summary['machine'])}")
    print(f"sequential {medians['sequential']:.2f} s, pool of {args.jobs} {medians[f'pool-{args.jobs}']:.2f} s "
          f"(medians of {args.rounds}): {speedup:.2f}x (target 1.7x); load average {summary['load_average']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
