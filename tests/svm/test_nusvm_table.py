"""benchmarks/nusvm_table.py, the driver of issue 10's scaling table: the runs it plans, in order, and the tables it
makes of their records (the runs themselves are scale_nusvm.py's, not run here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("nusvm_table", ROOT / "benchmarks" / "nusvm_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_interleaves_the_libraries_and_compares_large_fits_with_a_saved_model(table, tmp_path):
    out = tmp_path / "t.jsonl"
    runs = table.plan([1000, 50000], None, out)
    assert [key for key, _ in runs] == [
        *(f"{impl} 1000 {jobs} #{r}" for r in range(3) for impl, jobs in (("sklearn", 1), ("sertk", 1), ("sertk", 2))),
        "sklearn 50000 1 #0", "sertk 50000 1 #0", "sertk 50000 2 #0"]
    args = dict(runs)
    ref = str(tmp_path / "t-sklearn-50000.npz")
    assert args["sklearn 50000 1 #0"][-2:] == ["--save", ref]
    assert args["sertk 50000 2 #0"] == ["sertk", "50000", "2", "--cache", "8192", "--ref", ref]
    assert "--twin" in args["sertk 1000 1 #2"] and "--cache" not in args["sertk 1000 1 #2"]


def _rec(key, fit_s, **kw):
    impl, n, jobs, _ = key.split()
    return {"key": key, "impl": impl, "n": int(n), "jobs": int(jobs), "cache_mb": 1024, "fit_s": fit_s,
            "peak_mb": 10.0, "mode": "libsvm" if impl == "sklearn" else "gram", "n_iter": [5, 6],
            "support_sha": "abc", "n_sv": 90, **kw}


def test_the_summary_gives_medians_ratios_and_whether_the_models_agree(table, tmp_path):
    out = tmp_path / "t.jsonl"
    recs = [{"header": True, "machine": "CPU X", "commit": "c0ffee", "date": "2026-12-06T00:00:00Z"}]
    for r, (sk, one, two) in enumerate([(1.0, 0.1, 0.06), (1.2, 0.12, 0.05), (0.9, 0.2, 0.07)]):
        recs += [_rec(f"sklearn 1000 1 #{r}", sk),
                 _rec(f"sertk 1000 1 #{r}", one, predict_s=0.02, sklearn_predict_s=0.2, predict_m=1000,
                      same_predictions=True),
                 _rec(f"sertk 1000 2 #{r}", two)]
    recs.append(_rec("sklearn 2000 1 #0", 4.0))
    recs.append(_rec("sertk 2000 1 #0", 0.5, n_iter=[5, 7]))  # another path than libsvm's: said, not hidden
    out.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    text = table.summary(out)
    assert "`CPU X`" in text and "c0ffee" in text
    row = next(line for line in text.splitlines() if line.startswith("| 1000 | 1 GiB"))
    # medians: scikit-learn 1.0 s, ours 0.12 s on one thread and 0.06 s on two
    assert "| 1.000 s | 0.120 s | 8.3× | 0.060 s | 16.7× | 2.0× | yes |" in row
    assert "| 1000 | 90 | 1000 | 0.200 s | 0.020 s | 10.0× | yes |" in text
    assert "| 2000 | 1 GiB | 4.000 s | 0.500 s | 8.0× | — | — | — | **no** |" in text
