"""The imagebind featurizer end to end: equality with upstream's golden embeddings, weights files, options,
errors, fingerprint, plugin registration.

Golden embeddings: upstream's code (``scripts/make_imagebind_golden.py``, run in a venv where upstream
imports) on the committed recordings with ``random_audio_state_dict(seed=0)``, which the fixtures regenerate
bit for bit and save in the real checkpoint format.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from tolerances import IMAGEBIND_BATCHING, IMAGEBIND_EMBEDDING, assert_close

import sertk.download
from sertk.errors import AudioError, ConfigError, FeaturizerError
from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer
from sertk_plugins.featurizers.imagebind import weights as W

SUBSET = ["tiny_15ms_16k.wav", "overlap_3.7s_16k_dc.flac", "stereo_0.7s_44k_float.wav"]


def test_encoder_names_and_shapes_are_the_checkpoints():
    import torch

    from sertk_plugins.featurizers.imagebind.model import AudioEncoder

    with torch.device("meta"):
        enc = AudioEncoder()
    assert {k: tuple(v.shape) for k, v in enc.state_dict().items()} == W.AUDIO_SHAPES
    assert len(W.AUDIO_SHAPES) == 177
    assert sum(p.numel() for p in enc.parameters()) == 86_235_648


@pytest.mark.golden
def test_embeddings_equal_upstream(golden_run, recordings, golden):
    """The bar: within 1e-5 of upstream in fp32. Measured 0 for files over 2 s; ~1e-6 for files of at most 2 s,
    whose identical clips we compute once (upstream re-subtracts a ~1e-9 residual mean on the repeats), on the
    CPU that made the goldens; within IMAGEBIND_EMBEDDING on others."""
    assert golden_run.shape == (len(recordings), 1024) and golden_run.dtype == np.float32
    for i, name in enumerate(recordings):
        assert_close(golden_run[i], golden[f"embedding/{name}"], IMAGEBIND_EMBEDDING, what=name, err_msg=name)
    norms = np.linalg.norm(golden_run, axis=1)
    assert (norms <= 20.0 + 1e-4).all() and (norms > 15).all()  # the mean of three vectors of norm 20


def test_extracted_safetensors_gives_the_same_embeddings(random_safetensors, featurizer, recordings, golden_run):
    paths = [recordings[n] for n in SUBSET]
    from_safetensors = ImageBindFeaturizer(weights=str(random_safetensors), device="cpu").embed(paths)
    # exact: the same weights (other file format) and the same batch, in one process
    np.testing.assert_array_equal(from_safetensors, featurizer.embed(paths))
    # a different batch composition moves results by float rounding only
    rows = [list(recordings).index(n) for n in SUBSET]
    assert_close(from_safetensors, golden_run[rows], IMAGEBIND_BATCHING)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_is_close_to_float32(random_safetensors, recordings, golden_run, dtype):
    feat = ImageBindFeaturizer(weights=str(random_safetensors), device="cpu", dtype=dtype)
    low = feat.embed([recordings[n] for n in SUBSET])
    ref = golden_run[[list(recordings).index(n) for n in SUBSET]]
    cosine = (low * ref).sum(1) / np.linalg.norm(low, axis=1) / np.linalg.norm(ref, axis=1)
    assert low.dtype == np.float32 and (cosine >= 0.9999).all(), cosine
    assert not np.array_equal(low, ref)  # it did run in low precision
    assert feat.fingerprint()["dtype"] == dtype


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_dtype_is_bfloat16_only_where_the_cpu_has_it(random_safetensors, monkeypatch, caplog, native,
                                                          expected):
    import sertk.machine

    monkeypatch.setattr(sertk.machine, "bf16_is_native", lambda: native)
    feat = ImageBindFeaturizer(weights=str(random_safetensors), device="cpu", dtype="auto")
    assert feat.dtype == expected and feat.fingerprint()["dtype"] == expected  # the cache keys what ran
    with caplog.at_level("INFO", logger="sertk_plugins.featurizers.imagebind"):
        feat.encoder()
    assert f"native bfloat16: {'yes' if native else 'no'}): {expected}" in caplog.text
    assert "emulates" not in caplog.text
    assert ImageBindFeaturizer(device="cpu").dtype == "float32"  # the default never changes with the CPU


def test_emulated_low_precision_is_warned_about(random_safetensors, monkeypatch, caplog):
    import sertk.machine

    monkeypatch.setattr(sertk.machine, "bf16_is_native", lambda: False)
    with caplog.at_level("INFO", logger="sertk_plugins.featurizers.imagebind"):
        ImageBindFeaturizer(weights=str(random_safetensors), device="cpu", dtype="bfloat16").encoder()
    assert "bfloat16 on a CPU without hardware bfloat16" in caplog.text and "dtype=auto" in caplog.text


def test_l2_option_renormalises(random_safetensors, recordings, golden_run):
    feat = ImageBindFeaturizer(weights=str(random_safetensors), device="cpu", normalize="l2")
    out = feat.embed([recordings["overlap_3.7s_16k_dc.flac"]])
    ref = golden_run[list(recordings).index("overlap_3.7s_16k_dc.flac")]
    np.testing.assert_allclose(out[0], ref / np.linalg.norm(ref), atol=1e-6)
    assert feat.fingerprint()["normalize"] == "l2"


def test_a_bad_file_is_named_before_any_work(featurizer, recordings, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError) as info:
        featurizer.embed([recordings["tiny_15ms_16k.wav"], bad])
    assert info.value.path == bad and "broken.wav" in str(info.value)
    assert featurizer.embed([]).shape == (0, 1024)


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("SERTK_HOME", str(tmp_path))
    feat = ImageBindFeaturizer()
    with pytest.raises(FeaturizerError, match="sertk weights download"):
        feat.fingerprint()
    with pytest.raises(FeaturizerError, match="sertk weights download"):
        feat.encoder()
    with pytest.raises(FeaturizerError, match="does not exist"):
        ImageBindFeaturizer(weights=str(tmp_path / "nope.pth")).fingerprint()


def test_weights_are_found_in_sertk_home(monkeypatch, tmp_path, random_safetensors):
    monkeypatch.setenv("SERTK_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / W.AUDIO_NAME).symlink_to(random_safetensors)
    assert ImageBindFeaturizer().weights_path() == tmp_path / "weights" / W.AUDIO_NAME


def test_fingerprint_holds_the_weights_digest_computed_once(random_pth, monkeypatch):
    feat = ImageBindFeaturizer(weights=str(random_pth))
    fp = feat.fingerprint()
    h = hashlib.sha256(random_pth.read_bytes()).hexdigest()
    assert fp["weights_sha256"] == h
    assert (random_pth.parent / (random_pth.name + ".sha256.json")).is_file()
    monkeypatch.setattr(sertk.download, "sha256_of", lambda path: pytest.fail("digest recomputed"))
    assert ImageBindFeaturizer(weights=str(random_pth), clips=2).fingerprint()["weights_sha256"] == h
    fp2 = ImageBindFeaturizer(weights=str(random_pth), clips=2).fingerprint()
    assert fp2 != fp and fp2["clips"] == 2
    json.dumps(fp)
    for key in ("name", "dtype", "clips", "clip_seconds", "inplace_mean", "normalize", "reuse_identical_clips"):
        assert key in fp


@pytest.mark.parametrize("options", [{"dtype": "float64"}, {"normalize": "max"}, {"clips": 0},
                                     {"batch_size": 0}, {"clip_seconds": -1}])
def test_bad_options_are_config_errors(options):
    with pytest.raises(ConfigError):
        ImageBindFeaturizer(**options)


def test_plugin_registers_featurizer_and_weights_command():
    import click

    from sertk.plugins import PluginHost

    host = PluginHost(builtins=["sertk_plugins.featurizers.imagebind"], load_external=False)
    comp = host.get("featurizer", "imagebind")
    assert comp.cls is ImageBindFeaturizer and ImageBindFeaturizer().dim == 1024

    @click.group()
    def cli():
        pass

    host.add_commands(cli)
    assert set(cli.commands["weights"].commands) == {"download", "extract-audio", "info"}


def test_importing_the_plugin_does_not_import_torch():
    code = ("import sys, sertk, sertk_plugins.featurizers.imagebind, sertk_plugins.featurizers.imagebind.weights;"
            "import sertk_plugins.featurizers.imagebind.commands, sertk.audio;"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
