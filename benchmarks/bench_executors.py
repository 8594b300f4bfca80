"""Featurization throughput through the Ray executor (1 and 2 workers) against the local executor, same files.

Issue 12's target: the Ray executor's overhead at most 10 % with one worker on a 2-core machine. The work is real:
``handcrafted`` on ``--files`` synthetic utterances of ``--seconds`` each (noisy tones with vibrato), no cache, so
every round embeds every file. The local cluster (2 CPUs, no GPU) is started once before anything is timed and its
start is reported on its own; each Ray round includes what every ``embed_paths`` call pays: creating the actors,
which import sertk and build the featurizer. Ray runs each worker with one BLAS thread, so the local executor is
timed twice: as it runs by default, and limited to one BLAS thread (threadpoolctl), the like-for-like reference.
Rounds interleave the four sides (rotating the order), so all see the same machine load, and the embeddings are
checked to be the same.

Run (record the output in benchmarks/RESULTS-distributed.md, section "Featurization")::

    python benchmarks/bench_executors.py                          # 240 files of 4 s, 3 rounds
    python benchmarks/bench_executors.py --files 64 --rounds 1 --json benchmarks/results/executors-small.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def write_files(root: Path, n_files: int, seconds: float, seed: int = 0) -> list[Path]:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    paths = []
    for i in range(n_files):
        f0 = rng.uniform(120, 400)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)) + 0.05 * rng.standard_normal(t.size)
        paths.append(root / f"u{i:04d}.wav")
        sf.write(paths[-1], wave.astype(np.float32), 16000, subtype="PCM_16")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=240, help="synthetic utterances (default 240)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each (default 4 s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side, interleaved (default 3)")
    parser.add_argument("--json", type=Path, help="write the numbers and the machine record here")
    args = parser.parse_args(argv)

    import numpy as np
    from threadpoolctl import threadpool_limits

    from sertk.executors.ray import RayExecutor, connect
    from sertk.featurization.embed import embed_paths
    from sertk.machine import describe, machine_info
    from sertk.plugins import get_component, instantiate

    with tempfile.TemporaryDirectory(prefix="sertk-bench-") as tmp:
        os.environ.setdefault("RAY_TMPDIR", tmp)  # Ray's session files with the benchmark's, not in /tmp/ray
        paths = write_files(Path(tmp) / "audio", args.files, args.seconds)
        featurizer = instantiate(get_component("featurizer", "handcrafted"), {})
        t0 = time.perf_counter()
        connection = connect(num_cpus=2)
        cluster_start_s = time.perf_counter() - t0
        sides = {"local": lambda: None, "local 1 thread": lambda: None,
                 "ray x1": lambda: RayExecutor(workers=1, gpus_per_worker=0),
                 "ray x2": lambda: RayExecutor(workers=2, gpus_per_worker=0)}
        times: dict[str, list[float]] = {name: [] for name in sides}
        worker_start: dict[str, list[float]] = {name: [] for name in sides if name.startswith("ray")}
        reference = None
        try:
            for round_ in range(args.rounds):
                names = list(sides)
                names = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in names:
                    executor = sides[name]()
                    # Ray runs each worker with one BLAS thread (OMP_NUM_THREADS = its CPUs): the like-for-like local
                    limit = threadpool_limits(1) if name == "local 1 thread" else contextlib.nullcontext()
                    with limit:
                        t = time.perf_counter()
                        result = embed_paths(featurizer, paths, cache=None, executor=executor)
                        times[name].append(time.perf_counter() - t)
                    if executor is not None:
                        worker_start[name].append(executor.workers_start_s)
                    if reference is None:
                        reference = result.embeddings
                    # the worker's BLAS runs on one thread: allow float32 rounding (bit-equal where measured)
                    np.testing.assert_allclose(result.embeddings, reference, rtol=1e-6, atol=1e-7)
                    started = f" (workers started in {executor.workers_start_s:.2f} s)" if executor else ""
                    print(f"round {round_ + 1} {name}: {times[name][-1]:.2f} s{started}", flush=True)
        finally:
            connection.close()

    best = {name: min(values) for name, values in times.items()}
    summary = {
        "files": args.files, "seconds_per_file": args.seconds, "rounds": args.rounds, "featurizer": "handcrafted",
        "cluster_start_s": round(cluster_start_s, 2),
        "times_s": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "best_s": {name: round(v, 3) for name, v in best.items()},
        "workers_start_s": {name: [round(v, 3) for v in values] for name, values in worker_start.items()},
        "median_s": {name: round(statistics.median(v), 3) for name, v in times.items()},
        "files_per_s": {name: round(args.files / v, 2) for name, v in best.items()},
        "ray_x1_overhead": round(best["ray x1"] / best["local"] - 1, 4),
        "ray_x1_overhead_vs_1_thread": round(best["ray x1"] / best["local 1 thread"] - 1, 4),
        "ray_x2_speedup": round(best["local"] / best["ray x2"], 3),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(), "machine": machine_info(torch=False),
    }
    print(f"machine: {describe(summary['machine'])}")
    print(f"cluster start {cluster_start_s:.1f} s; best of {args.rounds}: " + ", ".join(
        f"{name} {v:.2f} s ({args.files / v:.1f} files/s)" for name, v in best.items()))
    print(f"ray x1 overhead {100 * summary['ray_x1_overhead']:+.1f} % (against local with 1 BLAS thread: "
          f"{100 * summary['ray_x1_overhead_vs_1_thread']:+.1f} %), ray x2 speed-up {summary['ray_x2_speedup']:.2f}x"
          f"; load average {summary['load_average']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
