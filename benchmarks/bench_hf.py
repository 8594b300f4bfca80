"""The ``hf`` featurizer against a plain transformers loop (one file at a time), same files, same model, one process.

The model: a layer-norm wav2vec 2.0 (``feat_extract_norm="layer"``, stable layer norm: the large/lv60 layout,
which takes an attention mask, so sertk batches it with padding) that is small but not trivial — 4 layers of
hidden 256, a 7-layer convolutional stem of 128 channels with the real kernels and strides (320 samples per frame)
— with random weights, saved with ``save_pretrained`` like a downloaded checkpoint. Files: the demo corpus
(0.9–2.2 s at 16 kHz).

- ours: ``sertk.featurization.embed.embed_paths`` without a cache (the host's path: batches of the featurizer's
  ``batch_size``; decoding, windows, the extractor, padded forward passes, every layer's statistics), with
  ``layer_store="none"`` so every round computes;
- reference: what a user writes — per file ``soundfile.read``, the checkpoint's ``AutoFeatureExtractor``, the
  model under ``torch.inference_mode``, ``last_hidden_state.mean(1)``.

Before timing, the two outputs are compared (the same vectors within 1e-5 of their scale). Each round times the
reference in the benchmark's setup, then ours, so both share the machine's load; ``extra_info`` holds both times
per round and the ratio. ``SERTK_BENCH_THREADS`` (default 2) torch threads; ``SERTK_BENCH_ROUNDS`` (default 3);
default 48 files, ``--full``: all 144. Run (record in benchmarks/RESULTS-featurizers.md, ``## hf``)::

    python -m pytest benchmarks/bench_hf.py -o python_files='bench_*.py' --benchmark-only \\
        --benchmark-columns=min,median,max,rounds -p no:cacheprovider \\
        --benchmark-json=benchmarks/results/hf-....json
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from sertk.featurization.embed import embed_paths  # noqa: E402
from sertk_plugins.datasets.demo import DemoDataset  # noqa: E402
from sertk_plugins.featurizers.hf import HFFeaturizer  # noqa: E402

FULL = os.environ.get("SERTK_BENCH_FULL", "0") == "1"
ROUNDS = int(os.environ.get("SERTK_BENCH_ROUNDS", "3"))
THREADS = int(os.environ.get("SERTK_BENCH_THREADS", "2"))
FILES = [u.path for u in DemoDataset().utterances()][: None if FULL else 48]


@pytest.fixture(scope="module", autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    config = transformers.Wav2Vec2Config(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
        conv_dim=(128,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf-bench") / "w2v2-layer-256x4"
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder


class PlainLoop:
    """The standard user code: one file at a time, the last layer mean-pooled."""

    def __init__(self, folder) -> None:
        self.extractor = transformers.AutoFeatureExtractor.from_pretrained(folder)
        self.model = transformers.AutoModel.from_pretrained(folder).eval()

    def __call__(self, paths) -> np.ndarray:
        import soundfile as sf

        out = []
        for path in paths:
            wave, rate = sf.read(str(path), dtype="float32")
            inputs = self.extractor(wave, sampling_rate=rate, return_tensors="pt")
            with torch.inference_mode():
                out.append(self.model(**inputs).last_hidden_state.mean(dim=1)[0].numpy())
        return np.stack(out)


def test_hf_against_plain_transformers_loop(benchmark, model_dir):
    benchmark.group = f"hf-w2v2-layer-256x4-{len(FILES)}-files"
    ours = HFFeaturizer(model=str(model_dir), layer="last", pooling="mean", layer_store="none")
    reference = PlainLoop(model_dir)
    want = reference(FILES)
    got = embed_paths(ours, FILES, cache=None).embeddings
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())  # equal output first
    reference_times: list[float] = []

    def setup():
        start = time.perf_counter()
        reference(FILES)
        reference_times.append(time.perf_counter() - start)

    benchmark.pedantic(lambda: embed_paths(ours, FILES, cache=None), setup=setup, rounds=ROUNDS, iterations=1)
    ours_times = list(benchmark.stats.stats.data)
    ratios = [r / o for r, o in zip(reference_times, ours_times)]
    benchmark.extra_info.update(
        files=len(FILES), threads=THREADS, batch_size=ours.batch_size,
        ours_s=ours_times, reference_s=reference_times,
        ours_utt_per_s=len(FILES) / float(np.median(ours_times)),
        reference_utt_per_s=len(FILES) / float(np.median(reference_times)),
        speedup_per_round=ratios, speedup_median=float(np.median(ratios)))
    print(f"\nhf: {len(FILES) / np.median(ours_times):.1f} utt/s, plain loop "
          f"{len(FILES) / np.median(reference_times):.1f} utt/s, speed-up {np.median(ratios):.2f}x (median of "
          f"{ROUNDS} interleaved rounds, {THREADS} threads)")


BASE_SIZES = {
    # the architectures of facebook/wav2vec2-base (group norm: one file at a time unless lengths are equal) and of
    # openai/whisper-small's encoder (every file is 30 s of input), random weights: the same arithmetic as the
    # real checkpoints
    "wav2vec2-base": lambda: (transformers.Wav2Vec2Config(),
                              transformers.Wav2Vec2FeatureExtractor(return_attention_mask=False)),
    "whisper-small": lambda: (transformers.WhisperConfig(d_model=768, encoder_layers=12, encoder_attention_heads=12,
                                                         encoder_ffn_dim=3072, decoder_layers=1,
                                                         decoder_attention_heads=12, decoder_ffn_dim=3072),
                              transformers.WhisperFeatureExtractor()),
}


@pytest.mark.skipif(os.environ.get("SERTK_BENCH_BASE_SIZE") != "1",
                    reason="base-size models take minutes here: SERTK_BENCH_BASE_SIZE=1")
@pytest.mark.parametrize("size", list(BASE_SIZES))
def test_seconds_per_utterance_base_size(benchmark, size, tmp_path):
    """Seconds per demo utterance for a base-size architecture (the docs' cost table)."""
    config, extractor = BASE_SIZES[size]()
    folder = tmp_path / size
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    extractor.save_pretrained(folder)
    files = FILES[:8 if size.startswith("wav2vec2") else 4]
    f = HFFeaturizer(model=str(folder), layer_store="none")
    embed_paths(f, files[:1], cache=None)  # loading
    benchmark.group = f"hf-base-size-{size}"
    benchmark.pedantic(lambda: embed_paths(f, files, cache=None), rounds=min(ROUNDS, 2), iterations=1)
    per_utt = float(np.median(benchmark.stats.stats.data)) / len(files)
    benchmark.extra_info.update(files=len(files), threads=THREADS, seconds_per_utterance=per_utt)
    print(f"\n{size}: {per_utt:.3f} s per utterance ({len(files)} files, {THREADS} threads)")
