"""``sertk embed`` and ``sertk cache``, with throwaway featurizers registered on a private plugin host."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sertk.plugins
from sertk import Featurizer, hookimpl
from sertk.cli.main import cli
from sertk.errors import AudioError
from sertk.featurization.cache import EmbeddingCache, database_path
from sertk.plugins import PluginHost

CALLS: list[str] = []  # every file any fake featurizer embedded, in order


def _stats(path) -> np.ndarray:
    try:
        x, _ = sf.read(path, dtype="float32")
    except Exception as exc:  # noqa: BLE001
        raise AudioError(path, f"not audio ({type(exc).__name__})") from exc
    CALLS.append(Path(path).name)
    return np.array([x.mean(), x.std(), x.min(), x.max()])


class Stats(Featurizer):
    name = "fake-stats"
    batch_size = 2

    def __init__(self, scale: float = 1.0, tag: str = "") -> None:
        self.scale, self.tag = scale, tag

    dim = 4

    def fingerprint(self):
        return {"name": self.name, "scale": self.scale, "tag": self.tag}

    def embed(self, paths):
        return np.array([_stats(p) * self.scale for p in paths], dtype=np.float32)


class Weighted(Featurizer):
    """Projects the statistics with a weights file (a .npy vector of 4 numbers)."""

    name = "fake-weighted"

    def __init__(self, weights: str | None = None) -> None:
        self.weights = np.ones(4) if weights is None else np.load(weights)
        self.digest = hashlib.sha256(np.ascontiguousarray(self.weights).tobytes()).hexdigest()

    dim = 4

    def fingerprint(self):
        return {"name": self.name, "weights_sha256": self.digest}

    def embed(self, paths):
        return np.array([_stats(p) * self.weights for p in paths], dtype=np.float32)


class FakePlugin:
    @hookimpl
    def sertk_register_featurizers(self, register):
        register(Stats)
        register(Weighted)


@pytest.fixture(autouse=True)
def host(monkeypatch, tmp_path):
    host = PluginHost(builtins=[], load_external=False)
    host.register_plugin(FakePlugin(), "test-embed-fakes")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    monkeypatch.setenv("SERTK_CACHE_DIR", str(tmp_path / "default-cache"))
    CALLS.clear()
    return host


@pytest.fixture
def wavs(tmp_path):
    d = tmp_path / "audio"
    d.mkdir()
    paths = []
    for i in range(4):
        x = 0.1 * np.random.default_rng(i).standard_normal(400 + 10 * i)
        sf.write(d / f"u{i}.wav", x.astype(np.float32), 16000, subtype="FLOAT")
        paths.append(str(d / f"u{i}.wav"))
    return paths


def invoke(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def stats(paths, scale=1.0):
    return np.array([_stats(p) * scale for p in paths], dtype=np.float32)


def test_embed_writes_paths_and_embeddings(wavs, tmp_path, monkeypatch):
    out = tmp_path / "out" / "emb.npz"
    result = invoke("embed", *wavs, "--featurizer", "fake-stats", "--out", out)
    assert result.exit_code == 0, result.output
    assert CALLS == ["u0.wav", "u1.wav", "u2.wav", "u3.wav"]
    with np.load(out) as npz:
        assert npz["paths"].tolist() == wavs
        assert npz["embeddings"].dtype == np.float32 and npz["embeddings"].shape == (4, 4)
        np.testing.assert_array_equal(npz["embeddings"], stats(wavs))
        assert json.loads(str(npz["fingerprint"])) == {"name": "fake-stats", "scale": 1.0, "tag": ""}
        assert "failed" not in npz.files
    assert "0 cached, 4 computed" in result.stderr
    assert database_path(tmp_path / "default-cache").exists()  # $SERTK_CACHE_DIR

    # the second run is served from the cache; paths are kept as given (relative, repeated)
    CALLS.clear()
    rel = [str(Path(wavs[1]).relative_to(tmp_path)), wavs[0], wavs[1]]
    monkeypatch.chdir(tmp_path)
    result = invoke("embed", *rel, "-f", "fake-stats", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert CALLS == [] and "3 cached, 0 computed" in result.stderr
    with np.load(out) as npz:
        assert npz["paths"].tolist() == rel
        np.testing.assert_array_equal(npz["embeddings"], stats([wavs[1], wavs[0], wavs[1]]))


def test_embed_options(wavs, tmp_path):
    out = tmp_path / "o.npz"
    result = invoke("embed", *wavs[:2], "-f", "fake-stats", "-o", "scale=2", "-o", "tag=run one", "--out", out,
                    "--batch-size", "1")
    assert result.exit_code == 0, result.output
    with np.load(out) as npz:
        np.testing.assert_allclose(npz["embeddings"], stats(wavs[:2], 2.0))
        assert json.loads(str(npz["fingerprint"])) == {"name": "fake-stats", "scale": 2, "tag": "run one"}

    result = invoke("embed", wavs[0], "-f", "fake-stats", "-o", "nope=1", "--out", out)
    assert result.exit_code == 1 and "has no option 'nope'" in result.stderr and "scale" in result.stderr
    result = invoke("embed", wavs[0], "-f", "fake-stats", "-o", "scale", "--out", out)
    assert result.exit_code == 1 and "'scale'" in result.stderr and "KEY=VALUE" in result.stderr
    result = invoke("embed", wavs[0], "-f", "no-such", "--out", out)
    assert result.exit_code == 1 and "fake-stats" in result.stderr and "fake-weighted" in result.stderr


def test_embed_weights_shorthand_and_cache_key(wavs, tmp_path):
    w1, w2 = tmp_path / "w1.npy", tmp_path / "w2.npy"
    np.save(w1, np.array([1.0, 2.0, 3.0, 4.0]))
    np.save(w2, np.array([1.0, 1.0, 1.0, -1.0]))
    out1, out2, out3 = (tmp_path / f"{n}.npz" for n in ("a", "b", "c"))
    assert invoke("embed", *wavs, "-f", "fake-weighted", "--weights", w1, "--out", out1).exit_code == 0
    CALLS.clear()
    assert invoke("embed", *wavs, "-f", "fake-weighted", "-o", f"weights={w1}", "--out", out2).exit_code == 0
    assert CALLS == []  # same weights → same fingerprint → cache hit
    assert invoke("embed", *wavs, "-f", "fake-weighted", "--weights", w2, "--out", out3).exit_code == 0
    assert len(CALLS) == 4  # other weights → miss
    with np.load(out1) as a, np.load(out2) as b, np.load(out3) as c:
        np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
        np.testing.assert_allclose(c["embeddings"], stats(wavs) * [1, 1, 1, -1])

    result = invoke("embed", wavs[0], "-f", "fake-weighted", "--weights", w1, "-o", f"weights={w2}", "--out", out1)
    assert result.exit_code == 1 and "--weights" in result.stderr


def test_embed_no_cache(wavs, tmp_path):
    out = tmp_path / "o.npz"
    for _ in range(2):
        assert invoke("embed", *wavs, "-f", "fake-stats", "--no-cache", "--out", out, "--overwrite").exit_code == 0
    assert len(CALLS) == 8
    assert not (tmp_path / "default-cache").exists()
    result = invoke("embed", *wavs, "-f", "fake-stats", "--no-cache", "--cache-dir", tmp_path / "c", "--out", out)
    assert result.exit_code == 2


def test_embed_bad_file_fails_and_writes_nothing(wavs, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_text("garbage")
    out = tmp_path / "o.npz"
    assert invoke("embed", wavs[0], "-f", "fake-stats", "--no-cache", "--out", out).exit_code == 0
    previous = out.read_bytes()
    files = [wavs[0], str(bad), wavs[1], str(tmp_path / "missing.wav")]
    result = invoke("embed", *files, "-f", "fake-stats", "--out", out, "--overwrite")
    assert result.exit_code == 1
    assert f"cannot embed {bad}: not audio" in result.stderr
    assert f"cannot embed {tmp_path / 'missing.wav'}:" in result.stderr
    assert "2 of 4 files" in result.stderr and "--skip-bad" in result.stderr
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left

    # the good files were cached; --skip-bad writes them and lists the failures
    CALLS.clear()
    result = invoke("embed", *files, "-f", "fake-stats", "--out", out, "--skip-bad", "--overwrite")
    assert result.exit_code == 0, result.output
    assert CALLS == [] and f"cannot embed {bad}" in result.stderr
    with np.load(out) as npz:
        assert npz["paths"].tolist() == [wavs[0], wavs[1]]
        assert npz["failed"].tolist() == [str(bad), str(tmp_path / "missing.wav")]
        np.testing.assert_array_equal(npz["embeddings"], stats([wavs[0], wavs[1]]))

    result = invoke("embed", wavs[0], "-f", "fake-stats", "--out", out, "--skip-bad", "--overwrite")
    with np.load(out) as npz:
        assert npz["failed"].shape == (0,) and npz["paths"].tolist() == [wavs[0]]


# -- sertk cache ---------------------------------------------------------------------------------------------

def _fill(wavs, tmp_path):
    for args in (("-o", "scale=1"), ("-o", "scale=3")):
        assert invoke("embed", *wavs, "-f", "fake-stats", *args, "--out", tmp_path / "x.npz",
                      "--overwrite").exit_code == 0
    assert invoke("embed", *wavs[:2], "-f", "fake-weighted", "--out", tmp_path / "y.npz").exit_code == 0


def _info(*args):
    result = invoke("cache", "info", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cache_info(wavs, tmp_path):
    empty = _info()
    assert empty["entries"] == 0 and empty["fingerprints"] == []
    assert not (tmp_path / "default-cache").exists()  # info does not create a cache
    _fill(wavs, tmp_path)
    info = _info()
    assert info["entries"] == 10 and info["size_bytes"] > 0
    assert info["path"] == str(database_path(tmp_path / "default-cache"))
    rows = sorted((f["featurizer"], f["entries"], f["fingerprint"].get("scale")) for f in info["fingerprints"])
    assert rows == [("fake-stats", 4, 1), ("fake-stats", 4, 3), ("fake-weighted", 2, None)]
    text = invoke("cache", "info").stdout
    assert "entries: 10" in text and "fake-weighted" in text
    assert info["fingerprints"][0]["fp_key"][:12] in text
    # --cache-dir
    assert _info("--cache-dir", tmp_path / "elsewhere")["entries"] == 0


def test_cache_clear_by_featurizer_with_confirmation(wavs, tmp_path):
    _fill(wavs, tmp_path)
    result = invoke("cache", "clear", "--featurizer", "fake-stats", input="n\n")
    assert result.exit_code == 1 and "8 entries" in result.stderr
    assert _info()["entries"] == 10
    result = invoke("cache", "clear", "--featurizer", "fake-stats", input="y\n")
    assert result.exit_code == 0 and "deleted 8" in result.stderr
    assert [f["featurizer"] for f in _info()["fingerprints"]] == ["fake-weighted"]
    result = invoke("cache", "clear", "--featurizer", "fake-stats", "--yes")
    assert result.exit_code == 0 and "nothing to clear" in result.stderr


def test_cache_clear_by_fingerprint_and_all(wavs, tmp_path):
    _fill(wavs, tmp_path)
    keys = {f["fingerprint"].get("scale"): f["fp_key"] for f in _info()["fingerprints"]}
    result = invoke("cache", "clear", "--fingerprint", keys[3][:10], "--yes")
    assert result.exit_code == 0 and "deleted 4" in result.stderr
    assert keys[3] not in {f["fp_key"] for f in _info()["fingerprints"]}
    result = invoke("cache", "clear", "--fingerprint", "zzzz", "--yes")
    assert result.exit_code == 1 and "no cached fingerprint" in result.stderr
    # the scale=1 embeddings are still served from the cache
    CALLS.clear()
    assert invoke("embed", *wavs, "-f", "fake-stats", "-o", "scale=1", "--out", tmp_path / "x.npz",
                  "--overwrite").exit_code == 0
    assert CALLS == []
    result = invoke("cache", "clear", "--yes")
    assert result.exit_code == 0 and "deleted 6" in result.stderr
    assert _info()["entries"] == 0
    with EmbeddingCache(tmp_path / "default-cache") as c:
        assert c.info().fingerprints == ()


def test_cache_clear_without_cache(tmp_path):
    result = invoke("cache", "clear", "--cache-dir", tmp_path / "none", "--yes")
    assert result.exit_code == 0 and "nothing to clear" in result.stderr
