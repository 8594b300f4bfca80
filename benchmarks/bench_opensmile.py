"""The ``opensmile`` featurizer against openSMILE called file by file, on the same demo-corpus files, one process.

Each round first times the reference (``Smile.process_file`` in a loop, openSMILE's plain use) in the benchmark's
setup, then sertk's path (``sertk.featurization.embed.embed_paths`` without a cache: decoding, checks, worker threads),
so the two alternate round by round and share the machine's load; ``extra_info`` holds both times per round and
their ratio. Variants: sertk with its default threads and with none (``num_workers=0``), and openSMILE's own
process pool (``Smile(num_workers=N, multiprocessing=True).process_files``) as the processes alternative.

Default: 48 files (about a minute); ``--full``: all 144, and ComParE_2016 too.

Run (record the output in benchmarks/RESULTS-featurizers.md):
  python -m pytest benchmarks/bench_opensmile.py -o python_files='bench_*.py' --benchmark-only \
      --benchmark-columns=min,median,max,rounds --benchmark-json=benchmarks/results/opensmile-....json
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

opensmile = pytest.importorskip("opensmile")

from sertk.featurization.embed import embed_paths  # noqa: E402
from sertk_plugins.datasets.demo import DemoDataset  # noqa: E402
from sertk_plugins.featurizers.opensmile_sets import OpenSmileFeaturizer  # noqa: E402

FULL = os.environ.get("SERTK_BENCH_FULL", "0") == "1"
ROUNDS = int(os.environ.get("SERTK_BENCH_ROUNDS", "3"))
FILES = [u.path for u in DemoDataset().utterances()][: None if FULL else 48]
FEATURE_SETS = ["eGeMAPSv02", "ComParE_2016"] if FULL else ["eGeMAPSv02"]
WORKERS = min(8, os.cpu_count() or 1)


def _smile(feature_set: str, **kwargs):
    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel.Functionals, **kwargs)


def _reference(smile) -> np.ndarray:
    """openSMILE's plain use: one process_file per file."""
    return np.stack([smile.process_file(str(path)).to_numpy(dtype=np.float32)[0] for path in FILES])


VARIANTS = {
    f"sertk, {WORKERS} threads": lambda fs: (lambda: embed_paths(OpenSmileFeaturizer(fs), FILES,
                                                                 cache=None).embeddings),
    "sertk, no threads": lambda fs: (lambda: embed_paths(OpenSmileFeaturizer(fs, num_workers=0), FILES,
                                                         cache=None).embeddings),
    f"opensmile process_files, {WORKERS} processes": lambda fs: (lambda: _smile(
        fs, num_workers=WORKERS, multiprocessing=True).process_files([str(p) for p in FILES])
        .to_numpy(dtype=np.float32)),
}


@pytest.mark.parametrize("feature_set", FEATURE_SETS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_opensmile_against_process_file(benchmark, feature_set, variant):
    benchmark.group = f"opensmile-{feature_set}-{len(FILES)}-files"
    smile = _smile(feature_set)
    run = VARIANTS[variant](feature_set)
    expected = _reference(smile)  # warm-up of both (library load, page cache) and the values to compare
    np.testing.assert_array_equal(run(), expected)  # same output: mono 16 kHz files, within full scale
    reference_s: list[float] = []

    def setup():
        start = time.perf_counter()
        _reference(smile)
        reference_s.append(time.perf_counter() - start)
        return (), {}

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, iterations=1)
    ours = list(benchmark.stats.stats.data)
    benchmark.extra_info.update(
        files=len(FILES), reference_s=reference_s, ours_s=ours,
        reference_utt_per_s=len(FILES) / float(np.median(reference_s)),
        ours_utt_per_s=len(FILES) / float(np.median(ours)),
        speedup_per_round=[r / o for r, o in zip(reference_s, ours)])
