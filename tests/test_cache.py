"""The embedding cache: keys, storage, integrity checks and housekeeping (sertk/featurization/cache.py)."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

import sertk.featurization.cache as cache_mod
from sertk.errors import FeaturizerError, SertkError
from sertk.featurization.cache import EmbeddingCache, audio_key, database_path, default_cache_dir, fingerprint_key

FP_A = {"name": "fake", "scale": 1.0, "weights_sha256": "00ff", "dtype": "float32"}
FP_B = {"name": "fake", "scale": 2.0, "weights_sha256": "00ff", "dtype": "float32"}
FP_OTHER = {"name": "other", "n": 3}
K1, K2, K3 = "1" * 64, "2" * 64, "3" * 64


@pytest.fixture
def cache(tmp_path):
    with EmbeddingCache(tmp_path / "cache") as c:
        yield c


def test_default_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("SERTK_CACHE_DIR", raising=False)
    monkeypatch.delenv("SERTK_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "sertk" / "cache"
    monkeypatch.setenv("SERTK_HOME", str(tmp_path / "sh"))
    assert default_cache_dir() == tmp_path / "sh" / "cache"
    monkeypatch.setenv("SERTK_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    with EmbeddingCache() as c:
        assert c.path == database_path(tmp_path / "explicit") and c.path.exists()


def test_fingerprint_key_is_canonical():
    assert fingerprint_key({"a": 1, "b": [1, 2]}) == fingerprint_key({"b": [1, 2], "a": 1})
    import hashlib

    assert fingerprint_key({"b": 1, "a": "x"}) == hashlib.sha256(b'{"a":"x","b":1}').hexdigest()
    keys = {fingerprint_key(fp) for fp in (FP_A, FP_B, FP_OTHER, {**FP_A, "dtype": "float16"})}
    assert len(keys) == 4
    assert fingerprint_key({"n": np.int64(3)}) == fingerprint_key({"n": 3})
    with pytest.raises(FeaturizerError, match="'bad'"):
        fingerprint_key({"name": "bad", "obj": object()})
    with pytest.raises(FeaturizerError):
        fingerprint_key({"name": "bad", "x": float("nan")})


def test_audio_key_is_content(tmp_path):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    a.write_bytes(b"RIFF-one")
    b.write_bytes(b"RIFF-one")
    c.write_bytes(b"RIFF-two")
    assert audio_key(a) == audio_key(b) != audio_key(c)
    os.utime(a, ns=(1, 1))  # time stamps do not matter
    assert audio_key(a) == audio_key(b)


def test_put_get_roundtrip_and_misses(cache):
    ka = fingerprint_key(FP_A)
    v1 = np.array([1.0, -2.5, 3.25], dtype=np.float64)  # stored as float32
    cache.put_many(ka, FP_A, [(K1, v1), (K2, np.zeros(3, np.float32))])
    got = cache.get_many(ka, [K1, K2, K3, K1])
    assert set(got) == {K1, K2}
    assert got[K1].dtype == np.float32 and got[K1].shape == (3,)
    np.testing.assert_array_equal(got[K1], v1.astype(np.float32))
    got[K1][0] = 99  # a writable copy, not a view into the cache
    assert cache.get_many(ka, [K1])[K1][0] == 1.0
    # another fingerprint sees nothing
    assert cache.get_many(fingerprint_key(FP_B), [K1, K2]) == {}


def test_persists_across_instances(tmp_path):
    ka = fingerprint_key(FP_A)
    with EmbeddingCache(tmp_path) as c:
        c.put_many(ka, FP_A, [(K1, np.arange(4.0))])
    with EmbeddingCache(tmp_path) as c:
        np.testing.assert_array_equal(c.get_many(ka, [K1])[K1], np.arange(4.0, dtype=np.float32))
    conn = sqlite3.connect(database_path(tmp_path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == cache_mod.SCHEMA_VERSION
    conn.close()


def test_unknown_schema_version_is_refused(tmp_path):
    EmbeddingCache(tmp_path).close()
    conn = sqlite3.connect(database_path(tmp_path))
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with pytest.raises(SertkError, match="schema version 99"):
        EmbeddingCache(tmp_path)


def test_put_many_rejects_mismatched_key_and_bad_vectors(cache):
    ka = fingerprint_key(FP_A)
    with pytest.raises(ValueError, match="not the key"):
        cache.put_many(fingerprint_key(FP_B), FP_A, [(K1, np.ones(2))])
    for bad in (np.array([1.0, np.nan]), np.array([1.0, np.inf]), np.ones((2, 2)), np.array([]),
                np.array(["a", "b"])):
        with pytest.raises(ValueError):
            cache.put_many(ka, FP_A, [(K1, bad)])
    assert cache.get_many(ka, [K1]) == {}


def test_put_many_is_one_transaction(cache):
    """A failure in the middle of a batch stores nothing of it: the rows already inserted are rolled back."""
    ka = fingerprint_key(FP_A)
    cache.put_many(ka, FP_A, [(K3, np.ones(2))])

    def items():
        yield K1, np.ones(2)
        yield K2, np.full(2, 2.0)
        raise KeyboardInterrupt  # killed half-way through writing the batch

    with pytest.raises(KeyboardInterrupt):
        cache.put_many(ka, FP_A, items())
    assert set(cache.get_many(ka, [K1, K2, K3])) == {K3}
    # the connection is usable afterwards
    cache.put_many(ka, FP_A, [(K1, np.ones(2))])
    assert set(cache.get_many(ka, [K1, K2, K3])) == {K1, K3}


def _corrupt(path: Path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE embeddings SET vector = substr(vector, 1, 8) WHERE audio_key = ?",  # truncated
        "UPDATE embeddings SET dim = 5 WHERE audio_key = ?",  # length does not match dim
        "UPDATE embeddings SET vector = zeroblob(12) WHERE audio_key = ?",  # right length, wrong bytes
        "UPDATE embeddings SET dtype = 'float64' WHERE audio_key = ?",
    ],
)
def test_corrupt_row_is_a_miss_with_a_warning_and_is_overwritten(tmp_path, caplog, sql):
    ka = fingerprint_key(FP_A)
    with EmbeddingCache(tmp_path) as c:
        c.put_many(ka, FP_A, [(K1, np.array([1.0, 2.0, 3.0])), (K2, np.ones(3))])
    _corrupt(database_path(tmp_path), sql, K1)
    with EmbeddingCache(tmp_path) as c, caplog.at_level(logging.WARNING, logger="sertk.featurization.cache"):
        assert set(c.get_many(ka, [K1, K2])) == {K2}
        assert "corrupt" in caplog.text and K1[:12] in caplog.text
        c.put_many(ka, FP_A, [(K1, np.array([1.0, 2.0, 3.0]))])
        caplog.clear()
        np.testing.assert_array_equal(c.get_many(ka, [K1])[K1], [1.0, 2.0, 3.0])
        assert "corrupt" not in caplog.text


def test_info_reports_entries_per_fingerprint(cache):
    empty = cache.info()
    assert empty.entries == 0 and empty.fingerprints == () and empty.path == cache.path
    cache.put_many(fingerprint_key(FP_A), FP_A, [(K1, np.ones(4)), (K2, np.ones(4))])
    cache.put_many(fingerprint_key(FP_OTHER), FP_OTHER, [(K1, np.ones(2))])
    info = cache.info()
    assert info.entries == 3 and info.size_bytes > 0
    by_key = {f.fp_key: f for f in info.fingerprints}
    a = by_key[fingerprint_key(FP_A)]
    assert (a.featurizer, a.entries, a.bytes, a.fingerprint) == ("fake", 2, 32, FP_A)
    assert by_key[fingerprint_key(FP_OTHER)].featurizer == "other"
    assert info.to_dict()["entries"] == 3


def test_clear_all_by_featurizer_by_key(cache):
    ka, kb, ko = (fingerprint_key(fp) for fp in (FP_A, FP_B, FP_OTHER))
    for key, fp in ((ka, FP_A), (kb, FP_B), (ko, FP_OTHER)):
        cache.put_many(key, fp, [(K1, np.ones(2)), (K2, np.ones(2))])
    assert cache.find_fingerprints(ka[:10]) == [ka]
    assert cache.find_fingerprints("") == sorted([ka, kb, ko])
    assert cache.count(fp_key=kb) == 2 and cache.count(featurizer="fake") == 4
    assert cache.clear(fp_key=kb) == 2
    assert cache.get_many(kb, [K1]) == {} and len(cache.get_many(ka, [K1, K2])) == 2
    assert {f.fp_key for f in cache.info().fingerprints} == {ka, ko}
    assert cache.clear(featurizer="fake") == 2
    assert [f.featurizer for f in cache.info().fingerprints] == ["other"]
    assert cache.clear(featurizer="nothing-like-this") == 0
    assert cache.clear() == 2
    assert cache.info().entries == 0 and cache.info().fingerprints == ()


def test_audio_keys_memo(tmp_path, monkeypatch):
    calls = []
    real = cache_mod.audio_key
    monkeypatch.setattr(cache_mod, "audio_key", lambda p: calls.append(p) or real(p))
    a = tmp_path / "a.wav"
    a.write_bytes(b"x" * 100)
    with EmbeddingCache(tmp_path / "c") as c:
        # a file written just now is racy: hashed every time, never memoised
        assert c.audio_keys([a]) == [real(a)] and c.audio_keys([a]) == [real(a)]
        assert len(calls) == 2
        monkeypatch.setattr(cache_mod, "RACY_SECONDS", -1e9)  # pretend every file has settled
        calls.clear()
        first = c.audio_keys([a, a, tmp_path / "missing.wav"])
        assert first[0] == first[1] == real(a) and isinstance(first[2], FileNotFoundError)
        assert len(calls) == 1
        assert c.audio_keys([a]) == [real(a)] and len(calls) == 1  # from the memo
        # same size, same mtime, new content: ctime gives it away
        stat = a.stat()
        a.write_bytes(b"y" * 100)
        os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert c.audio_keys([a]) == [audio_key(a)] != first[:1]


def test_not_a_database_is_a_clear_error(tmp_path):
    database_path(tmp_path).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(SertkError, match="cannot open the embedding cache"):
        EmbeddingCache(tmp_path)
