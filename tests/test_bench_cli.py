"""``sertk bench``: the tables, the JSON report, the options' errors, and the synthetic corpus it times.

Sized for CI: the handcrafted featurizer on a handful of files, one round, a small ν-SVM. The ImageBind path
(random weights in the real format) is in ``tests/imagebind/test_bench.py``. No assertion here is about speed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sertk import bench
from sertk.cli.main import cli


def _bench(*args: str):
    return CliRunner().invoke(cli, ["bench", "-f", "handcrafted", *args], catch_exceptions=False)


def test_bench_times_each_setting_and_writes_the_report(tmp_path):
    out = tmp_path / "report.json"
    result = _bench("--n-files", "3", "--rounds", "1", "--batch-size", "1,3", "--svm-sizes", "40", "--reference",
                    "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "featurizer handcrafted on cpu: 3 files (synthetic, IEMOCAP spread" in result.output
    assert "batch_size=1" in result.output and "batch_size=3" in result.output
    assert "nu-SVM" in result.output and "sklearn fit" in result.output
    report = json.loads(out.read_text())
    assert report["sertk_bench"] == 1 and report["machine"]["cpu"]["cores"] >= 1
    runs = report["featurizer"]["runs"]
    assert [r["settings"]["batch_size"] for r in runs] == [1, 3]
    for run in runs:
        assert run["files"] == 3 and len(run["round_s"]) == 1
        assert math.isclose(run["utterances_per_s"], 3 / run["median_s"])
        assert run["achieved_tflops"] is None  # handcrafted does not count its operations
    (svm,) = report["svm"]
    assert (svm["n_train"], svm["n_test"], svm["dim"]) == (40, 10, 1024)
    assert set(svm["fit_s"]) == set(svm["predict_s"]) == {"sertk", "sklearn"}
    assert 0.0 <= svm["agreement"] <= 1.0
    assert "matmul" not in report  # no dtype ran: nothing to compare with


def test_bench_on_your_own_files(tmp_path):
    audio = tmp_path / "audio" / "sub"
    audio.mkdir(parents=True)
    for i, seconds in enumerate((0.7, 1.5)):
        sf.write(audio / f"a{i}.flac", bench.speech_like(int(seconds * 16000), 16000, i), 16000)
    (audio / "notes.txt").write_text("not audio")
    result = _bench("--files", str(tmp_path / "audio"), "--rounds", "1", "--svm-sizes", "none")
    assert result.exit_code == 0, result.output
    assert f"2 files (files under {tmp_path / 'audio'})" in result.output
    assert "nu-SVM" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _bench("--files", str(empty), "--svm-sizes", "none")
    assert result.exit_code == 1 and f"--files: {empty}: no audio files" in result.output


def test_the_report_is_never_written_over_another_file(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"mine": 1}')
    args = ["--n-files", "1", "--rounds", "1", "--svm-sizes", "none"]
    assert "already exists; pass --overwrite" in _bench(*args, "--json", str(other)).output
    result = _bench(*args, "--json", str(other), "--overwrite")
    assert result.exit_code == 1 and "is not a report written by sertk bench" in result.output
    assert other.read_text() == '{"mine": 1}'
    ours = tmp_path / "ours.json"
    assert _bench(*args, "--json", str(ours)).exit_code == 0
    assert _bench(*args, "--json", str(ours), "--overwrite").exit_code == 0


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "4,x"], "not a comma-separated list of integers"),
    (["--batch-size", "0"], "every value must be an integer ≥ 1"),
    (["--svm-sizes", "5"], "every value must be an integer ≥ 10"),
    (["--dtype", "float32", "-o", "dtype=bfloat16"], "give dtype once"),
    (["--workers", "2"], "has no option 'num_workers'"),
])
def test_bad_options_fail_in_one_line_before_any_work(args, message):
    result = _bench(*args, "--n-files", "1")
    assert result.exit_code in (1, 2) and message in result.output
    assert "files (" not in result.output  # nothing was timed


def test_the_synthetic_corpus_has_iemocaps_spread():
    seconds = bench.iemocap_durations(400)
    # the corpus: mean 4.46 s, a quarter at or under 2 s, 0.6 to 30 s (stratified quantiles, so close for any n)
    assert 4.2 < seconds.mean() < 4.7 and 0.2 < np.mean(seconds <= 2.0) < 0.3
    assert seconds.min() >= 0.6 and seconds.max() <= 30.0
    assert len(set(seconds)) > 300  # many distinct lengths, not the few a hand-written list gives
    np.testing.assert_array_equal(seconds, bench.iemocap_durations(400))  # the same files on every machine


def test_the_matrix_product_rate_is_measured():
    rate = bench.matmul_tflops("cpu", "float32", size=64, seconds=0.01)
    assert math.isfinite(rate) and rate > 0
