"""``sertk bench``'s ImageBind path: the featurizer counts the work it does, and the throughput through the host's
cached path reports utterances/s and achieved TFLOP/s from that count (no assertion about speed)."""

from __future__ import annotations

import math

import soundfile as sf

from sertk import bench
from sertk_plugins.featurizers.imagebind.model import clip_flop


def test_the_featurizer_counts_the_clips_it_computes(featurizer, recordings):
    names = ["short_0.8s_16k.flac", "overlap_3.7s_16k_dc.flac", "resample_3.1s_44k.flac", "tiny_15ms_16k.wav"]
    # one clip for a file of at most 2 s (its three are identical), three otherwise; 44.1 kHz counted at 16 kHz
    assert featurizer.flops([recordings[n] for n in names]) == (1 + 3 + 3 + 1) * clip_flop()
    assert math.isclose(clip_flop() / 1e9, 38.08, rel_tol=1e-3)  # the 40.9 minus the last block's tokens
    assert math.isclose(clip_flop(class_token_only=False) / 1e9, 40.93, rel_tol=1e-3)


def test_throughput_through_the_cached_path(featurizer, recordings, tmp_path):
    files = [recordings["short_0.8s_16k.flac"], recordings["tiny_15ms_16k.wav"]]
    result = bench.featurizer_throughput(featurizer, files, rounds=1, batch_size=2, scratch=tmp_path,
                                         settings={"dtype": featurizer.dtype})
    assert result.files == 2 and len(result.round_s) == 1
    assert result.flops == 2 * clip_flop()
    assert math.isclose(result.tflops, result.flops / result.median_s / 1e12)
    assert result.as_dict()["settings"] == {"batch_size": 2, "dtype": "float32"}
    assert list(tmp_path.iterdir()) == []  # the round's cache was in a temporary folder, gone


def test_the_synthetic_files_decode_at_their_durations(tmp_path):
    paths = bench.write_corpus(tmp_path, 5)
    seconds = [sf.info(str(p)).duration for p in paths]
    assert seconds == list(bench.iemocap_durations(5))
    assert all(sf.info(str(p)).samplerate == 16000 and sf.info(str(p)).subtype == "PCM_16" for p in paths)
