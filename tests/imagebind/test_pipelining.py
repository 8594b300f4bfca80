"""The GPU path's host side, checked on the CPU: a batch in flight, chunked preprocessing, one padded filterbank
call, TF32 switched off through torch's new interface, one copy per decoded file, thread pools sized by the usable
cores, content keys hashed in threads. Each must change nothing but speed and memory.
"""

from __future__ import annotations

import hashlib
import threading
import types

import numpy as np
import pytest
import torch
from tolerances import FLOAT32_RESHAPED, IMAGEBIND_BATCHING, assert_close

import sertk.machine
from sertk.errors import AudioError
from sertk.featurization.cache import EmbeddingCache
from sertk.featurization.embed import embed_paths
from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer, _exact_fp32
from sertk_plugins.featurizers.imagebind import preprocess as pre


@pytest.fixture
def make(featurizer, random_safetensors):
    """A featurizer with these options that shares the session's loaded encoder (loading is most of the cost)."""
    def build(**options):
        feat = ImageBindFeaturizer(weights=str(random_safetensors), **options)
        feat._encoder, feat._torch_device = featurizer.encoder()
        return feat

    return build


@pytest.fixture(scope="module")
def short(recordings):
    """The test recordings of at most 2 s (one clip each: fast on the CPU), with their positions in the goldens."""
    import soundfile as sf

    chosen = [(i, p) for i, p in enumerate(recordings.values()) if sf.info(str(p)).duration <= 2.0]
    return [i for i, _ in chosen], [p for _, p in chosen]


def test_a_batch_stays_in_flight_and_changes_nothing(make, short, golden_run, tmp_path, monkeypatch):
    rows, paths = short[0][:3], short[1][:3]
    feat = make(batch_size=1, num_workers=2)
    feat._launch_ahead = True  # on by default on a GPU only; on the CPU it reorders the same work
    events = []
    real_launch, real_embed = feat._launch, feat.embed
    monkeypatch.setattr(feat, "_launch", lambda cut: (events.append(("launch", len(cut))), real_launch(cut))[1])
    monkeypatch.setattr(feat, "embed", lambda p: (events.append(("embed", len(p))), real_embed(p),
                                                  events.append(("return", len(p))))[1])
    with EmbeddingCache(tmp_path / "cache") as cache:
        result = embed_paths(feat, paths, cache=cache)
    assert_close(result.embeddings, golden_run[rows], IMAGEBIND_BATCHING)
    sizes = [1] * len(paths)
    # the first batch is launched by its own embed; each later one inside the embed before it, before it returns
    expected = [("embed", sizes[0]), ("launch", sizes[0])]
    for i in range(len(sizes)):
        if i + 1 < len(sizes):
            expected.append(("launch", sizes[i + 1]))
        expected += [("return", sizes[i])] + ([("embed", sizes[i + 1])] if i + 1 < len(sizes) else [])
    assert events == expected
    assert feat._in_flight == {} and feat._prefetched == {}
    feat.close()


def test_a_bad_file_in_the_next_batch_fails_only_its_own_batch(make, short, golden_run, tmp_path):
    rows, paths = short
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    feat = make(num_workers=2)
    feat._launch_ahead = True
    first, second = paths[:2], [paths[2], bad]
    feat.prefetch(first)
    feat.prefetch(second)
    assert_close(feat.embed(first), golden_run[rows[:2]], IMAGEBIND_BATCHING)
    assert feat._in_flight == {}  # not launched: its own embed raises for it
    with pytest.raises(AudioError) as info:
        feat.embed(second)
    assert info.value.path == bad
    feat.close()


def test_preprocessing_is_chunked_by_clips_per_forward(make, recordings, short, golden_run, monkeypatch):
    names = list(recordings)
    rows = [names.index("overlap_3.7s_16k_dc.flac"), short[0][0]]  # 3 clips + 1 clip
    paths = [recordings[names[i]] for i in rows]
    feat = make()
    monkeypatch.setattr(feat, "clips_per_forward", lambda: 2)
    chunks = []
    real = pre.clip_features
    monkeypatch.setattr(pre, "clip_features", lambda clips, *a: (chunks.append(len(clips)), real(clips, *a))[1])
    assert_close(feat.embed(paths), golden_run[rows], IMAGEBIND_BATCHING)
    assert chunks == [2, 2]  # never the whole batch's features at once


def test_one_padded_filterbank_call_equals_one_call_per_length(recordings):
    cfg = pre.ClipConfig()
    clips = []
    for path in recordings.values():  # 15 ms to 10.4 s: padded, short, overlapping and long files
        clips += pre.cut_file(path, cfg).clips
    noise = torch.Generator().manual_seed(0)
    for n in (cfg.min_samples, 401, 559, 4321, 17000, 31999):  # one frame, a frame and a sample, ...
        clips.append(0.1 * torch.randn(n, generator=noise))
    lengths = {c.shape[-1] for c in clips}
    assert len(lengths) >= 8
    padded = pre.clip_features(clips, cfg)
    assert_close(padded.numpy(), pre.clip_features_by_length(clips, cfg).numpy(), FLOAT32_RESHAPED,
                 "one padded call vs one per length")


def test_exact_fp32_uses_the_fp32_precision_interface(monkeypatch):
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, conv.fp32_precision)

    def refuse(self, *args):
        raise AssertionError("the legacy allow_tf32 flags were touched")

    monkeypatch.setattr(type(torch.backends.cudnn), "allow_tf32", property(refuse, refuse))
    cuda = types.SimpleNamespace(type="cuda")
    try:
        matmul.fp32_precision = conv.fp32_precision = "tf32"  # as a user may have set them
        with _exact_fp32(cuda, "float32"):
            assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
        with _exact_fp32(cuda, "bfloat16"):
            assert matmul.fp32_precision == "tf32"  # low precision: nothing to switch
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def test_a_decoded_file_is_copied_once_and_a_callers_array_never_edited(recordings, monkeypatch):
    from sertk.audio.io import read_audio

    path = recordings["overlap_3.7s_16k_dc.flac"]  # overlapping clips: the in-place mean matters

    wave, rate = read_audio(path)
    wave = wave + 0.25  # an offset, so the in-place mean subtraction must show
    caller = wave.copy()
    cfg = pre.ClipConfig(sample_rate=rate)
    copied = pre.cut_clips(wave, rate, cfg)
    np.testing.assert_array_equal(wave, caller)  # the default copies: the caller's array is untouched
    in_place = pre.cut_clips(wave, rate, cfg, copy=False)
    assert not np.array_equal(wave, caller)  # the mean was subtracted in the decoded array itself: no copy
    for a, b in zip(copied.clips, in_place.clips):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # exact: the same arithmetic on the same samples
    seen = []
    real = pre.cut_clips
    monkeypatch.setattr(pre, "cut_clips", lambda *a, **k: (seen.append(k.get("copy", True)), real(*a, **k))[1])
    pre.cut_file(path, pre.ClipConfig())
    assert seen == [False]


@pytest.mark.parametrize("cores, workers", [(3, 3), (64, 8)])
def test_gpu_worker_threads_follow_the_usable_cores(random_safetensors, monkeypatch, cores, workers):
    monkeypatch.setattr(sertk.machine, "cpu_info", lambda: {"cores": cores})
    feat = ImageBindFeaturizer(weights=str(random_safetensors), device="cuda")
    assert feat.num_workers == workers and feat.launch_ahead
    assert not ImageBindFeaturizer(device="cpu").launch_ahead


def test_content_keys_are_hashed_in_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(sertk.machine, "cpu_info", lambda: {"cores": 4})
    files = []
    for i in range(12):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (1000 + i))
        files.append(path)
    missing = tmp_path / "missing.wav"
    threads = set()
    import sertk.featurization.cache as cache_module

    real = cache_module.audio_key
    monkeypatch.setattr(cache_module, "audio_key", lambda p: (threads.add(threading.get_ident()), real(p))[1])
    with EmbeddingCache(tmp_path / "cache") as cache:
        keys = cache.audio_keys([*files, missing, files[0]])
    assert keys[:12] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]  # in input order
    assert isinstance(keys[12], FileNotFoundError) and keys[13] == keys[0]
    assert threading.get_ident() not in threads and len(threads) >= 1  # a pool's threads, not the caller's
