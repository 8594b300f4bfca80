"""Batched featurization through the cache (sertk/featurization/embed.py), including the kill-and-resume test."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cache_rows import committed_rows

import sertk
from sertk import Featurizer
from sertk.errors import AudioError, ConfigError, FeaturizerError
from sertk.featurization.cache import EmbeddingCache, audio_key, database_path, fingerprint_key
from sertk.featurization.embed import NON_FINITE, embed_paths


class StatsFeaturizer(Featurizer):
    """Per-file statistics of the samples; records every ``embed`` call."""

    name = "stats"
    batch_size = 3

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[list[str]] = []

    @property
    def dim(self) -> int:
        return 4

    def fingerprint(self):
        return {"name": self.name, "scale": self.scale, "dtype": "float32"}

    def embed(self, paths):
        self.calls.append([Path(p).name for p in paths])
        rows = []
        for path in paths:
            try:
                x, _ = sf.read(path, dtype="float32")
            except Exception as exc:  # noqa: BLE001
                raise AudioError(path, f"not audio ({type(exc).__name__})") from exc
            rows.append(np.array([x.mean(), x.std(), x.min(), x.max()]) * self.scale)
        return np.array(rows, dtype=np.float32)

    @property
    def embedded(self) -> list[str]:
        return [name for call in self.calls for name in call]


def write_wav(path: Path, seed: int, n: int = 800) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(n)).astype(np.float32), 16000, subtype="FLOAT")
    return path


def expected(paths, scale=1.0):
    return StatsFeaturizer(scale).embed(paths)


@pytest.fixture
def wavs(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    return [write_wav(d / f"u{i}.wav", i) for i in range(5)]


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "cache") as c:
        yield c


def test_without_cache(wavs):
    f = StatsFeaturizer()
    result = embed_paths(f, wavs, cache=None)
    assert result.embeddings.dtype == np.float32 and result.embeddings.shape == (5, 4)
    np.testing.assert_array_equal(result.embeddings, expected(wavs))
    assert result.ok.tolist() == [True] * 5 and result.failures == {}
    assert (result.n_cached, result.n_computed) == (0, 5)
    assert [len(c) for c in f.calls] == [3, 2]


def test_cache_hit_and_miss(wavs, cache):
    first = embed_paths(StatsFeaturizer(), wavs[:3], cache=cache)
    f = StatsFeaturizer()
    second = embed_paths(f, wavs, cache=cache)
    assert f.embedded == ["u3.wav", "u4.wav"]
    assert (second.n_cached, second.n_computed) == (3, 2)
    np.testing.assert_array_equal(second.embeddings[:3], first.embeddings)
    np.testing.assert_array_equal(second.embeddings, expected(wavs))
    f = StatsFeaturizer()
    third = embed_paths(f, wavs, cache=cache)
    assert f.calls == [] and (third.n_cached, third.n_computed) == (5, 0)
    np.testing.assert_array_equal(third.embeddings, second.embeddings)


def test_fingerprint_change_is_a_miss(wavs, cache):
    embed_paths(StatsFeaturizer(1.0), wavs, cache=cache)
    f = StatsFeaturizer(2.0)
    result = embed_paths(f, wavs, cache=cache)
    assert sorted(f.embedded) == sorted(p.name for p in wavs) and result.n_cached == 0
    np.testing.assert_allclose(result.embeddings, expected(wavs, 2.0))
    assert len(cache.info().fingerprints) == 2


def test_content_change_same_path_is_a_miss(wavs, cache):
    embed_paths(StatsFeaturizer(), wavs, cache=cache)
    stat = wavs[1].stat()
    write_wav(wavs[1], seed=99)  # same path, same size, new samples
    os.utime(wavs[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert wavs[1].stat().st_size == stat.st_size
    f = StatsFeaturizer()
    result = embed_paths(f, wavs, cache=cache)
    assert f.embedded == ["u1.wav"] and (result.n_cached, result.n_computed) == (4, 1)
    np.testing.assert_array_equal(result.embeddings, expected(wavs))


def test_renamed_file_is_a_hit(wavs, cache, tmp_path):
    embed_paths(StatsFeaturizer(), wavs, cache=cache)
    moved = wavs[0].rename(tmp_path / "renamed.wav")
    f = StatsFeaturizer()
    result = embed_paths(f, [moved], cache=cache)
    assert f.calls == [] and result.n_cached == 1


def test_identical_audio_is_embedded_once(wavs, tmp_path, cache):
    copy = tmp_path / "copy.wav"
    copy.write_bytes(wavs[0].read_bytes())
    paths = [wavs[0], wavs[1], copy, wavs[0], wavs[2]]
    for c in (None, cache):
        f = StatsFeaturizer()
        result = embed_paths(f, paths, cache=c, batch_size=10)
        assert f.calls == [["u0.wav", "u1.wav", "u2.wav"]]
        assert (result.n_cached, result.n_computed) == (0, 5)
        np.testing.assert_array_equal(result.embeddings, expected(paths))


def test_commits_per_batch(wavs, cache):
    class Dies(StatsFeaturizer):
        def embed(self, paths):
            if len(self.calls) == 2:
                raise RuntimeError("power cut")
            return super().embed(paths)

    with pytest.raises(RuntimeError):
        embed_paths(Dies(), wavs, cache=cache, batch_size=2)
    fp = StatsFeaturizer().fingerprint()
    assert cache.count(fp_key=fingerprint_key(fp)) == 4  # two finished batches
    f = StatsFeaturizer()
    result = embed_paths(f, wavs, cache=cache, batch_size=2)
    assert f.embedded == ["u4.wav"] and (result.n_cached, result.n_computed) == (4, 1)
    np.testing.assert_array_equal(result.embeddings, expected(wavs))


def test_bad_file_is_retried_alone(wavs, tmp_path, cache):
    bad = tmp_path / "bad.wav"
    bad.write_text("not a wav file")
    paths = [wavs[0], bad, wavs[1], wavs[2], tmp_path / "missing.wav", wavs[3]]
    f = StatsFeaturizer()
    result = embed_paths(f, paths, cache=cache, batch_size=3)
    # batch 1 fails on bad.wav and is retried file by file; the missing file never reaches the featurizer
    assert f.calls == [["u0.wav", "bad.wav", "u1.wav"], ["u0.wav"], ["bad.wav"], ["u1.wav"], ["u2.wav", "u3.wav"]]
    assert result.ok.tolist() == [True, False, True, True, False, True]
    assert set(result.failures) == {1, 4}
    assert "not audio" in result.failures[1] and "No such file" in result.failures[4]
    assert result.audio_keys == [audio_key(p) if p.exists() else None for p in paths]
    assert result.fp_key == fingerprint_key(f.fingerprint())
    np.testing.assert_array_equal(result.embeddings, expected([wavs[0], wavs[1], wavs[2], wavs[3]]))
    assert result.n_computed == 4
    # good files are cached, the bad one is not
    f = StatsFeaturizer()
    again = embed_paths(f, paths, cache=cache)
    assert f.calls == [["bad.wav"]] and again.n_cached == 4 and set(again.failures) == {1, 4}


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda rows: rows[:, :3], r"shape \(2, 3\)"),
        (lambda rows: rows[:1], r"shape \(1, 4\)"),
        (lambda rows: rows.astype(str), "dtype"),
    ],
)
def test_bad_output_raises_and_is_not_cached(wavs, cache, output, message):
    class Broken(StatsFeaturizer):
        name = "broken"

        def embed(self, paths):
            rows = super().embed(paths)
            return output(rows) if len(self.calls) == 2 else rows

    with pytest.raises(FeaturizerError, match=message) as info:
        embed_paths(Broken(), wavs, cache=cache, batch_size=2)
    assert "'broken'" in str(info.value)
    fp_key = fingerprint_key(Broken().fingerprint())
    assert set(cache.get_many(fp_key, cache.audio_keys(wavs))) == set(cache.audio_keys(wavs[:2]))


@pytest.mark.parametrize("output", [
    lambda rows: np.where(np.arange(4) == 2, np.nan, rows),  # a NaN in one column of each row
    lambda rows: rows * np.float32(np.inf),
    lambda rows: rows.astype(np.float64) * 1e300,  # finite in float64, infinite as float32
])
def test_non_finite_embeddings_fail_their_files_and_are_not_cached(wavs, cache, output):
    """Any featurizer's non-finite output is a per-file failure (like unreadable audio), never cached."""
    class Broken(StatsFeaturizer):
        name = "broken"

        def embed(self, paths):
            rows = super().embed(paths)
            return np.array([output(r[None])[0] if p.name == "u2.wav" else r for p, r in zip(paths, rows)])

    result = embed_paths(Broken(), wavs, cache=cache, batch_size=2)
    assert result.ok.tolist() == [True, True, False, True, True]
    assert result.failures == {2: NON_FINITE} and "not finite" in NON_FINITE
    assert np.isfinite(result.embeddings).all() and result.embeddings.shape[0] == 4
    fp_key = fingerprint_key(Broken().fingerprint())
    held = cache.get_many(fp_key, cache.audio_keys(wavs))
    assert cache.audio_keys(wavs)[2] not in held and len(held) == 4


def test_progress_and_logging(wavs, cache, monkeypatch, caplog):
    bars = []

    class Bar:
        def __init__(self, total, desc, unit):
            self.total, self.desc, self.done, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n=1):
            self.done += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(sertk.progress, "bar", lambda total, desc="", unit="it": Bar(total, desc, unit))
    embed_paths(StatsFeaturizer(), wavs[:2], cache=cache)
    with caplog.at_level(logging.INFO, logger="sertk.featurization.embed"):
        embed_paths(StatsFeaturizer(), wavs, cache=cache, desc="demo")
    assert [(b.total, b.done, b.closed) for b in bars] == [(2, 2, True), (3, 3, True)]
    assert bars[1].desc == "demo"
    assert "5 files: 2 from the cache, 3 computed" in caplog.text


def test_arguments(wavs):
    assert embed_paths(StatsFeaturizer(), [], cache=None).embeddings.shape == (0, 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="batch size"):
            embed_paths(StatsFeaturizer(), wavs, cache=None, batch_size=bad)


# -- kill -9 in the middle of a run, then resume ---------------------------------------------------------------

SLOW_MODULE = '''
import time
from pathlib import Path
import numpy as np

class Slow:
    """Features from the bytes of the file; sleeps in every batch; logs each call to $SLOW_LOG."""
    name = "slow"
    batch_size = 2
    dim = 3

    def __init__(self, log=None, delay=0.0):
        self.log, self.delay, self.embedded = log, delay, []

    def fingerprint(self):
        return {"name": "slow", "version": 1}

    def embed(self, paths):
        if self.log:
            with open(self.log, "a") as fh:
                fh.write("start\\n")
        time.sleep(self.delay)
        self.embedded += [Path(p).name for p in paths]
        rows = []
        for p in paths:
            b = np.frombuffer(Path(p).read_bytes(), dtype=np.uint8).astype(np.float64)
            rows.append([b.mean(), b.std(), b.sum() % 997])
        return np.array(rows, dtype=np.float32)
'''

RUNNER = '''
import sys
from pathlib import Path
from slowfeat import Slow
from sertk.featurization.cache import EmbeddingCache
from sertk.featurization.embed import embed_paths

log, cache_dir, *files = sys.argv[1:]
with EmbeddingCache(Path(cache_dir)) as cache:
    embed_paths(Slow(log=log, delay=0.4), [Path(f) for f in files], cache=cache)
'''


def test_killed_run_resumes(tmp_path, monkeypatch):
    (tmp_path / "slowfeat.py").write_text(SLOW_MODULE)
    (tmp_path / "runner.py").write_text(textwrap.dedent(RUNNER))
    monkeypatch.syspath_prepend(str(tmp_path))
    from slowfeat import Slow

    rng = np.random.default_rng(0)
    files = []
    for i in range(10):
        files.append(tmp_path / f"f{i}.bin")
        files[-1].write_bytes(rng.integers(0, 256, 200 + i, dtype=np.uint8).tobytes())
    cache_dir, log = tmp_path / "cache", tmp_path / "calls.log"
    fp_key = fingerprint_key(Slow().fingerprint())
    repo_root = Path(sertk.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo_root)])}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "runner.py"), str(log), str(cache_dir),
                             *map(str, files)], env=env, stderr=subprocess.PIPE)

    try:
        deadline = time.monotonic() + 30
        while True:  # wait until >= 1 batch is committed and the next batch is under way
            assert proc.poll() is None, f"runner ended before it was killed: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "runner made no progress"
            starts = log.read_text().count("start") if log.exists() else 0
            done = committed_rows(cache_dir)
            if done >= 2 and starts > done // 2:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    before = committed_rows(cache_dir)
    assert 2 <= before < len(files)
    assert before % 2 == 0, "a batch of two was half-written"
    conn = sqlite3.connect(database_path(cache_dir))
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    with EmbeddingCache(cache_dir) as cache:
        stored = cache.get_many(fp_key, cache.audio_keys(files))
        assert len(stored) == before  # every committed row reads back intact
        resumed_featurizer = Slow()
        resumed = embed_paths(resumed_featurizer, files, cache=cache)
    assert len(resumed_featurizer.embedded) == len(files) - before
    assert (resumed.n_cached, resumed.n_computed) == (before, len(files) - before)
    clean = embed_paths(Slow(), files, cache=None)
    np.testing.assert_array_equal(resumed.embeddings, clean.embeddings)
    assert resumed.ok.all()


class PrefetchingStats(StatsFeaturizer):
    """Records the optional ``prefetch`` hints next to the ``embed`` calls."""

    def prefetch(self, paths):
        self.calls.append(["prefetch"] + [Path(p).name for p in paths])


def test_prefetch_hint_names_the_next_batch_before_the_current_one_is_embedded(wavs):
    f = PrefetchingStats()
    result = embed_paths(f, wavs, cache=None, batch_size=2)
    names = [p.name for p in wavs]  # 5 files: batches of 2, 2, 1
    assert f.calls == [["prefetch", *names[0:2]], ["prefetch", *names[2:4]], names[0:2],
                       ["prefetch", *names[4:5]], names[2:4], names[4:5]]
    assert result.embeddings.shape == (5, 4)
    assert embed_paths(f, [], cache=None).embeddings.shape == (0, 4)
