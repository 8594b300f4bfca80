"""Decoding in worker threads and the prefetch of the next batch: the same embeddings, the same errors, bounded.

These paths exist for throughput on a GPU (the model embeds one batch while threads prepare the next); on any
device they must change nothing but speed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tolerances import IMAGEBIND_BATCHING, assert_close

from sertk.errors import AudioError, ConfigError
from sertk.featurization.cache import EmbeddingCache
from sertk.featurization.embed import embed_paths
from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer


@pytest.fixture(scope="module")
def paths(recordings):
    return list(recordings.values())


def test_threads_prefetch_and_the_calling_thread_give_the_same_embeddings(random_safetensors, paths, golden_run):
    inline = ImageBindFeaturizer(weights=str(random_safetensors), num_workers=0)
    threaded = ImageBindFeaturizer(weights=str(random_safetensors), num_workers=3)
    # exact: the same batch through the same model in one process; threads only decode and cut
    np.testing.assert_array_equal(inline.embed(paths), golden_run)
    np.testing.assert_array_equal(threaded.embed(paths), golden_run)
    threaded.prefetch(paths[:4])
    threaded.prefetch(paths[4:])
    assert len(threaded._prefetched) == 2
    # another batch shape may change the matrix products' blocking: equal to rounding, not bit for bit
    assert_close(threaded.embed(paths[4:]), golden_run[4:], IMAGEBIND_BATCHING)
    assert_close(threaded.embed(paths[:4]), golden_run[:4], IMAGEBIND_BATCHING)
    assert threaded._prefetched == {}
    threaded.close()


def test_prefetched_batches_never_embedded_are_dropped(random_safetensors, paths):
    feat = ImageBindFeaturizer(weights=str(random_safetensors), num_workers=1)
    for i in range(len(paths)):
        feat.prefetch(paths[i:i + 1])
    assert list(feat._prefetched) == [tuple(paths[-2:-1]), tuple(paths[-1:])]
    inline = ImageBindFeaturizer(weights=str(random_safetensors), num_workers=0)
    inline.prefetch(paths)  # no threads: a no-op
    assert inline._prefetched == {}
    feat.close()


def test_host_tells_the_featurizer_the_next_batch_first(random_safetensors, paths, golden_run, tmp_path,
                                                        monkeypatch):
    feat = ImageBindFeaturizer(weights=str(random_safetensors), batch_size=3, num_workers=2)
    calls = []
    real_prefetch, real_embed = feat.prefetch, feat.embed
    monkeypatch.setattr(feat, "prefetch", lambda p: (calls.append(("prefetch", len(p))), real_prefetch(p)))
    monkeypatch.setattr(feat, "embed", lambda p: (calls.append(("embed", len(p))), real_embed(p))[1])
    with EmbeddingCache(tmp_path / "cache") as cache:
        result = embed_paths(feat, paths, cache=cache)
    assert_close(result.embeddings, golden_run, IMAGEBIND_BATCHING)
    sizes = [len(paths[i:i + 3]) for i in range(0, len(paths), 3)]
    expected = [("prefetch", sizes[0])]
    for i, size in enumerate(sizes):
        expected += ([("prefetch", sizes[i + 1])] if i + 1 < len(sizes) else []) + [("embed", size)]
    assert calls == expected
    assert feat._prefetched == {}  # every prefetched batch was used


def test_a_bad_file_in_a_prefetched_batch_is_named(random_safetensors, paths, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    feat = ImageBindFeaturizer(weights=str(random_safetensors), num_workers=2)
    batch = [paths[0], bad, tmp_path / "missing.wav"]
    feat.prefetch(batch)
    with pytest.raises(AudioError) as info:
        feat.embed(batch)
    assert info.value.path == bad  # the first bad file in order, not whichever thread failed first
    feat.close()


def test_batch_size_and_clips_per_forward_follow_the_device(random_safetensors, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = ImageBindFeaturizer(weights=str(random_safetensors))
    assert (cpu.batch_size, cpu.clips_per_forward(), cpu.num_workers) == (16, 64, 0)
    assert ImageBindFeaturizer(batch_size=5).batch_size == 5
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = ImageBindFeaturizer(weights=str(random_safetensors))
    assert gpu.torch_device().type == "cuda"
    assert (gpu.batch_size, gpu.clips_per_forward()) == (256, 1024) and gpu.num_workers >= 1
    assert ImageBindFeaturizer(device="cpu").batch_size == 16


@pytest.mark.parametrize("options", [{"num_workers": -1}, {"num_workers": 1.5}, {"batch_size": True}])
def test_bad_worker_options(options):
    with pytest.raises(ConfigError, match="must be an integer"):
        ImageBindFeaturizer(**options)
