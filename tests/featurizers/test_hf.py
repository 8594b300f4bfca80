"""The ``hf`` featurizer over tiny random-weight models saved in the real on-disk format (no network, no weights).

Every model is built once per session from a small config (hidden 32, 2 layers, a 4-layer convolutional stem of
320 samples per frame like the real ones) and written with ``save_pretrained`` next to its feature extractor.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from sertk.errors import AudioError, ConfigError, FeaturizerError  # noqa: E402
from sertk_plugins.featurizers import hf  # noqa: E402
from sertk_plugins.featurizers.hf import HFFeaturizer  # noqa: E402
from sertk_plugins.featurizers.hf.windows import read_windows, window_bounds  # noqa: E402

#: Batched and one-by-one forward passes multiply matrices of other shapes, so BLAS sums in another order:
#: float32 rounding (~1e-7 relative per product) grows over the stem and two layers to ~1e-6 of the values'
#: scale (measured ≤ 4e-7); 1e-5 of the scale leaves room across CPUs and still catches any padding leak (≥ 1e-2).
BATCH_RTOL = 1e-5

_STEM = dict(conv_dim=(16, 16, 16, 16), conv_stride=(5, 4, 4, 4), conv_kernel=(10, 4, 4, 4), hidden_size=32,
             num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_conv_pos_embeddings=16,
             num_conv_pos_embedding_groups=2)


def _configs():
    import transformers as T

    return {
        # wav2vec2-base style: group norm in the stem, trained without attention masks
        "wav2vec2-group": (T.Wav2Vec2Config(**_STEM, feat_extract_norm="group", do_stable_layer_norm=False), False),
        # large / lv60 style: layer norm in the stem, stable layer norm, takes a mask
        "wav2vec2-layer": (T.Wav2Vec2Config(**_STEM, feat_extract_norm="layer", do_stable_layer_norm=True), True),
        "hubert": (T.HubertConfig(**_STEM, feat_extract_norm="group"), False),
        "wavlm": (T.WavLMConfig(**_STEM, feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=32,
                                max_bucket_distance=100), True),
        "data2vec-audio": (T.Data2VecAudioConfig(**_STEM), True),
        "whisper": (T.WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=1,
                                    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                                    decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=16,
                                    vocab_size=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                    decoder_start_token_id=1), None),
    }


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is fastest, and on a loaded machine each parallel region of two threads waits for
    a core (measured: a 3200-frame layer norm 0.5 ms on one thread, 19 ms on two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Kind → a model folder (config.json, model.safetensors, preprocessor_config.json), built once."""
    import torch
    import transformers as T

    root = tmp_path_factory.mktemp("hf-models")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # see _one_torch_thread
    try:
        return _build(root, T, torch)
    finally:
        torch.set_num_threads(before)


def _build(root: Path, T, torch) -> dict[str, Path]:
    folders = {}
    for kind, (config, mask) in _configs().items():
        torch.manual_seed(0)
        model = T.AutoModel.from_config(config)
        folder = root / kind
        model.save_pretrained(folder)
        if kind == "whisper":
            extractor = T.WhisperFeatureExtractor(feature_size=16)
        else:
            extractor = T.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=mask)
        extractor.save_pretrained(folder)
        folders[kind] = folder
    return folders


def write(path: Path, seconds: float, rate: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    wave = 0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    wave = wave[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    sf.write(str(path), wave.astype(np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture
def files(tmp_path) -> list[Path]:
    """Lengths that exercise every batching path: two of exactly equal length, a file shorter than the stem's
    receptive field (10 ms), one at 44.1 kHz in stereo."""
    return [write(tmp_path / "a.wav", 1.0, seed=1), write(tmp_path / "b.wav", 0.61, seed=2),
            write(tmp_path / "c.wav", 1.0, seed=3), write(tmp_path / "d.wav", 1.73, seed=4),
            write(tmp_path / "e.wav", 0.01, seed=5), write(tmp_path / "f.wav", 0.8, 44100, 2, seed=6)]


def count_forwards(monkeypatch, featurizer: HFFeaturizer) -> list[tuple]:
    """Patch the featurizer's model class so each forward pass records its input shape."""
    model, _ = featurizer.encoder()
    calls: list[tuple] = []
    original = type(model).forward

    def forward(self, *args, **kwargs):
        inputs = kwargs.get("input_values", kwargs.get("input_features"))
        calls.append(tuple(inputs.shape))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", forward)
    return calls


def reference(folder: Path, wave: np.ndarray, layer: int, whisper: bool = False) -> np.ndarray:
    """Plain transformers, one file: the extractor, the model, the frames of one hidden state (float64); the
    last is ``last_hidden_state`` (after the final layer norm of stable-layer-norm models)."""
    import torch
    import transformers as T

    extractor = T.AutoFeatureExtractor.from_pretrained(folder)
    model = T.AutoModel.from_pretrained(folder).eval()
    with torch.inference_mode():
        if whisper:
            inputs = extractor(wave, sampling_rate=16000, return_tensors="pt")
            states = model.get_encoder()(**inputs, output_hidden_states=True).hidden_states
            return states[layer][0, :math.ceil(wave.size / 320)].double().numpy()
        inputs = extractor(wave, sampling_rate=16000, return_tensors="pt")
        out = model(**inputs, output_hidden_states=True)
        states = [*out.hidden_states[:-1], out.last_hidden_state]
        return states[layer][0].double().numpy()


# -- loading, shapes, registration ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wav2vec2-group", "wav2vec2-layer", "hubert", "wavlm", "data2vec-audio",
                                  "whisper"])
def test_every_family_embeds_and_batching_never_changes_an_embedding(models, files, kind, monkeypatch):
    f = HFFeaturizer(model=str(models[kind]), layer_store="none")
    expected_rule = {"wav2vec2-layer": "padded", "wavlm": "padded", "whisper": "whisper"}.get(kind, "equal-length")
    assert f.batching_rule() == expected_rule
    calls = count_forwards(monkeypatch, f)
    batched = np.stack(f.all_views_rows(files))
    # equal-length: a and c share a pass; whisper: every file is 30 s, two per pass under the CPU budget
    # padded: longest first, each batch within 20 % of its longest: d | a c f | b | e
    assert len(calls) == {"equal-length": 5, "padded": 4, "whisper": 3}[expected_rule]
    if expected_rule == "equal-length":
        assert all(len(set(shape[1:])) == 1 and shape[0] in (1, 2) for shape in calls)
    alone = np.stack([f.all_views_rows([p])[0] for p in files])
    assert batched.shape == (len(files), 4 * 2 * 32) and np.isfinite(batched).all()
    scale = np.abs(alone).max()
    np.testing.assert_allclose(batched, alone, rtol=BATCH_RTOL, atol=BATCH_RTOL * scale)
    x = f.embed(files)
    assert x.shape == (len(files), f.dim) == (6, 32) and x.dtype == np.float32


def test_registered_with_its_extra():
    seen = []
    hf.sertk_register_featurizers(register=seen.append)
    assert seen == [HFFeaturizer] and HFFeaturizer.extra == "hf" and HFFeaturizer.name == "hf"


# -- layers and pooling ---------------------------------------------------------------------------------------
def test_layers_and_pooling_equal_plain_transformers(models, files):
    import soundfile as sf

    wave = sf.read(str(files[3]), dtype="float32")[0]
    for kind in ("wav2vec2-layer", "whisper"):
        whisper = kind == "whisper"
        for layer, index in ((0, 0), (1, 1), ("last", 2), (-1, 2)):
            frames = reference(models[kind], wave, index, whisper)
            x = HFFeaturizer(model=str(models[kind]), layer=layer, pooling="mean+std",
                             layer_store="none").embed([files[3]])[0]
            want = np.concatenate([frames.mean(0), frames.std(0)])  # population std over frames
            # float64 statistics of the same float32 frames, stored as float32: float32 rounding of the result
            np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
        every = np.stack([reference(models[kind], wave, i, whisper) for i in range(3)]).mean(0)
        x = HFFeaturizer(model=str(models[kind]), layer="mean", layer_store="none").embed([files[3]])[0]
        np.testing.assert_allclose(x, every.mean(0), rtol=1e-5, atol=1e-6 * np.abs(every).max())


def test_a_layer_sweep_runs_the_model_once(models, files, monkeypatch):
    folder = str(models["wav2vec2-layer"])
    first = HFFeaturizer(model=folder, layer=1)
    calls = count_forwards(monkeypatch, first)
    x1 = first.embed(files)
    passes = len(calls)  # one per batch of the first embedding (see the batching test)
    assert passes >= 1
    for layer in (0, 1, "last", "mean"):
        for pooling in ("mean", "mean+std"):
            f = HFFeaturizer(model=folder, layer=layer, pooling=pooling)  # a fresh featurizer, as a new run makes
            f._encoder, f._extractor = first.encoder()  # the patched model: any forward would be counted
            x = f.embed(files)
            fresh = HFFeaturizer(model=folder, layer=layer, pooling=pooling, layer_store="none")
            fresh._encoder, fresh._extractor = first.encoder()
            n = len(calls)
            np.testing.assert_array_equal(x, fresh.embed(files))  # served rows are the computed ones, bit for bit
            calls[n:] = []
            if layer == 1 and pooling == "mean":
                np.testing.assert_array_equal(x, x1)
    assert len(calls) == passes  # every layer and pooling above came from the first embedding's passes
    other = HFFeaturizer(model=folder, dtype="bfloat16")
    assert other.layer_store().fp_key != first.layer_store().fp_key


def test_fingerprint(models):
    folder = models["wav2vec2-group"]
    f = HFFeaturizer(model=str(folder))
    fp = f.fingerprint()
    json.dumps(fp)
    assert fp["name"] == "hf" and fp["model"] == "wav2vec2-group" and fp["layer"] == 2 and fp["pooling"] == "mean"
    assert fp["weights_sha256"] == {"model.safetensors": hashlib.sha256(
        (folder / "model.safetensors").read_bytes()).hexdigest()}
    assert fp["dtype"] == "float32" and fp["normalisation"]["do_normalize"] is True
    assert fp["window"] == {"rule": "equal-split-v1", "seconds": 30.0} and "revision" in fp and "commit" in fp
    for same in ({"layer": -1}, {"layer": 2}, {"batch_size": 3}, {"layer_store": "none"}):
        assert HFFeaturizer(model=str(folder), **same).fingerprint() == fp
    for option, value in (("layer", 1), ("layer", "mean"), ("pooling", "mean+std"), ("dtype", "bfloat16"),
                          ("chunk_seconds", 10.0)):
        assert HFFeaturizer(model=str(folder), **{option: value}).fingerprint() != fp, option
    assert HFFeaturizer(model=str(models["hubert"])).fingerprint()["weights_sha256"] != fp["weights_sha256"]
    assert HFFeaturizer(model=str(folder), pooling="mean+std").dim == 64


# -- long recordings ------------------------------------------------------------------------------------------
def test_window_rule():
    assert window_bounds(100, 100) == [(0, 100)]
    assert window_bounds(101, 100) == [(0, 50), (50, 101)]  # no 1-sample sliver
    bounds = window_bounds(3600 * 16000, 30 * 16000)
    assert len(bounds) == 120 and bounds[-1][1] == 3600 * 16000 and all(b - a == 480000 for a, b in bounds)


def test_long_recording_in_windows_equals_frame_weighted_statistics(models, tmp_path, monkeypatch):
    import soundfile as sf

    path = write(tmp_path / "long.wav", 75.0, seed=7)
    folder = models["wav2vec2-layer"]
    f = HFFeaturizer(model=str(folder), pooling="mean+std", layer_store="none")
    calls = count_forwards(monkeypatch, f)
    x = f.embed([path])[0]
    assert all(shape[-1] <= 30 * 16000 for shape in calls) and sum(s[0] for s in calls) == 3  # 3 × 25 s
    wave = sf.read(str(path), dtype="float32")[0]
    monkeypatch.undo()
    frames = np.concatenate([reference(folder, wave[a:b], 2) for a, b in window_bounds(wave.size, 30 * 16000)])
    want = np.concatenate([frames.mean(0), frames.std(0)])  # over all frames of all windows
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_long_file_is_read_window_by_window_at_16k(tmp_path):
    """A 44.1 kHz stereo file read in windows gives the samples of resampling the whole file at once."""
    import torch

    from sertk.audio.io import read_audio
    from sertk.audio.resample import resample

    path = write(tmp_path / "long44.wav", 7.3, 44100, 2, seed=8)
    window = 2 * 16000
    parts = list(read_windows(path, window))
    wave, rate = read_audio(path)
    whole = resample(torch.from_numpy(wave.mean(axis=0)), rate, 16000).numpy()
    assert [p.size for p in parts] == [b - a for a, b in window_bounds(whole.size, window)]
    # the same filter taps over the same samples; only the convolution's summation order may differ
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-6)


# -- errors and offline mode ----------------------------------------------------------------------------------
def test_bad_options_and_missing_models_are_named(models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(ConfigError, match="option model is required"):
        HFFeaturizer()
    for bad in ({"layer": "first"}, {"pooling": "max"}, {"dtype": "int8"}, {"chunk_seconds": 0}):
        with pytest.raises(ConfigError):
            HFFeaturizer(model="x", **bad)
    with pytest.raises(ConfigError, match="out of range"):
        HFFeaturizer(model=str(models["hubert"]), layer=3).dim
    with pytest.raises(ConfigError, match="float16 runs on a GPU only"):
        HFFeaturizer(model=str(models["hubert"]), dtype="float16", device="cpu").fingerprint()
    with pytest.raises(ConfigError, match="at most 30 for Whisper"):
        HFFeaturizer(model=str(models["whisper"]), chunk_seconds=40).dim
    with pytest.raises(FeaturizerError, match="no config.json"):
        HFFeaturizer(model=str(tmp_path)).dim
    with pytest.raises(FeaturizerError, match="not a folder"):
        HFFeaturizer(model=str(tmp_path / "no" / "such" / "dir")).dim
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(FeaturizerError, match="model_type 'bert'; supported: wav2vec2"):
        HFFeaturizer(model=str(tmp_path / "bert")).dim
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for offline in ({"local_files_only": True}, {}):
        if not offline:
            monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does
        with pytest.raises(FeaturizerError, match="'nobody/no-such-model' is not in the Hugging Face cache"):
            HFFeaturizer(model="nobody/no-such-model", **offline).dim
    with pytest.raises(AudioError, match="no-such.wav"):
        HFFeaturizer(model=str(models["hubert"])).embed([tmp_path / "no-such.wav"])


def test_hub_id_from_the_cache_offline(models, files, tmp_path, monkeypatch):
    """A hub id resolves through huggingface_hub's cache layout (refs → snapshot) with the network off."""
    import shutil

    import huggingface_hub.constants

    hub = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = hub / "models--someone--tiny-wavlm" / "snapshots" / commit
    shutil.copytree(models["wavlm"], snapshot)
    (hub / "models--someone--tiny-wavlm" / "refs").mkdir()
    (hub / "models--someone--tiny-wavlm" / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    f = HFFeaturizer(model="someone/tiny-wavlm", layer_store="none")
    fp = f.fingerprint()
    assert fp["model"] == "someone/tiny-wavlm" and fp["commit"] == commit
    local = HFFeaturizer(model=str(models["wavlm"]), layer_store="none")
    assert fp["weights_sha256"] == local.fingerprint()["weights_sha256"]
    np.testing.assert_array_equal(f.embed(files[:2]), local.embed(files[:2]))


# -- end to end ----------------------------------------------------------------------------------------------
def test_sertk_run_with_a_local_model_folder(models, tmp_path):
    from click.testing import CliRunner

    from sertk.cli.main import cli

    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["--no-progress", "run", "--featurizer", "hf", "-o",
                                      f"featurizer.model={models['wav2vec2-layer']}", "-o", "featurizer.layer=1",
                                      "--no-plots", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert "hf" in result.output and "UA" in result.output
    assert json.dumps(report).count("wav2vec2-layer") >= 1


def test_bfloat16_is_close_to_float32(models, files):
    a = HFFeaturizer(model=str(models["wav2vec2-layer"]), layer_store="none").embed(files[:3])
    b = HFFeaturizer(model=str(models["wav2vec2-layer"]), layer_store="none", dtype="bfloat16").embed(files[:3])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    # bfloat16 keeps 8 significant bits per product; pooled over frames the vectors stay within 1e-3 in cosine
    # (measured ≥ 0.99998 on the tiny models)
    assert cosine.min() > 0.999


def test_importing_the_plugin_imports_neither_torch_nor_transformers():
    import subprocess
    import sys

    code = ("import sys, sertk_plugins.featurizers.hf; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
