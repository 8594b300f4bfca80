"""``sertk run`` on the demo corpus, whole process (interpreter start-up to written report), side by side.

Issue 2's target: the default ``sertk run`` completes on the demo corpus in under two minutes on 2 cores.

Groups
  pipeline-demo-cold   fresh $SERTK_HOME (empty embedding cache): the default run (handcrafted + nusvm) and the
                       same run with scikit-learn's NuSVC as the classifier
  pipeline-demo-warm   the same with embeddings served from the cache (a repeated run)

Run (record the output in benchmarks/RESULTS-pipeline.md):
  python -m pytest benchmarks/bench_pipeline.py -o python_files='bench_*.py' --benchmark-only \
      --benchmark-columns=min,median,max,rounds
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROUNDS = 3
VARIANTS = {"default (nusvm)": [], "sklearn-nusvc": ["--classifier", "sklearn-nusvc"]}


def _run(home: Path, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "SERTK_HOME": str(home), "SERTK_LOAD_PLUGINS": ""}
    subprocess.run([sys.executable, "-m", "sertk", "--no-progress", "run", "--out", str(out), *extra],
                   check=True, env=env, capture_output=True, text=True)
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_demo_run_cold_cache(benchmark, variant):
    benchmark.group = "pipeline-demo-cold"
    reports = []

    def setup():
        work = Path(tempfile.mkdtemp(prefix="sertk-bench-"))
        return (work / "home", work / "run", VARIANTS[variant]), {}

    def run(home, out, extra):
        reports.append(_run(home, out, extra))

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    report = reports[-1]
    assert report["featurizer"]["n_computed"] == report["dataset"]["n_utterances"] == 144
    benchmark.extra_info.update(accuracy=report["accuracy"], timings=report["timings"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_demo_run_warm_cache(benchmark, variant, tmp_path):
    benchmark.group = "pipeline-demo-warm"
    _run(tmp_path / "home", tmp_path / "first", VARIANTS[variant])  # fill the cache
    reports = []
    # a new --out each round: sertk refuses to write into an earlier run's folder without --overwrite
    benchmark.pedantic(lambda: reports.append(_run(tmp_path / "home", tmp_path / f"run{len(reports)}",
                                                   VARIANTS[variant])),
                       rounds=ROUNDS, iterations=1)
    assert reports[-1]["featurizer"]["n_cached"] == 144
    benchmark.extra_info.update(accuracy=reports[-1]["accuracy"], timings=reports[-1]["timings"])
