#!/usr/bin/env python3
"""Make the golden files that ``tests/imagebind`` compares sertk's ImageBind featurizer against.

Runs *upstream's own code* (PyPI ``imagebind-unofficial``: Meta's files unchanged) through the stand-ins of
``scripts/upstream_shims`` on a set of test recordings and writes, under ``tests/data/imagebind/``:

- the recordings themselves (``rec/*.wav|flac``: 15 ms to 10.4 s, 16 / 44.1 / 48 kHz, mono and stereo,
  PCM and float, with DC offsets), synthesised deterministically here (``--recordings`` rewrites them);
- ``golden.npz``: per recording, upstream's model input (normalised log-mel, ``[clips, 128, 204]``; one clip
  for recordings of at most 2 s, whose clips cover the same samples) and upstream's embedding with the
  random weights of ``weights.random_audio_state_dict(seed=0)`` (the real weights cannot be shipped; the
  tests regenerate the same weights bit for bit from the seed);
- ``golden.json``: how and with which versions the goldens were made.

Recordings shorter than one frame crash upstream; their golden is upstream's output on the recording padded
with silence to 400 samples, which is what sertk promises to compute.

Upstream does not import in sertk's own environment; use a separate one::

    python3 -m venv /tmp/upstream-venv && . /tmp/upstream-venv/bin/activate
    pip install torch==2.13.0 numpy soundfile einops ftfy regex iopath pillow click pluggy safetensors tqdm
    pip install --no-deps imagebind-unofficial==0.1.1 torchaudio==2.11.0 pytorchvideo==0.1.5
    PYTHONPATH=. python scripts/make_imagebind_golden.py            # add --recordings to rewrite them
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "imagebind"
SEED = 0

#: name → (sample rate, channels, samples per channel, soundfile subtype, DC offset per channel)
RECORDINGS: dict[str, tuple[int, int, int, str, tuple[float, ...]]] = {
    "tiny_15ms_16k.wav": (16000, 1, 240, "PCM_16", (0.02,)),
    "frame_25ms_16k.wav": (16000, 1, 400, "PCM_16", (0.0,)),
    "short_0.8s_16k.flac": (16000, 1, 12800, "PCM_16", (0.05,)),
    "exact_2s_16k.wav": (16000, 1, 32000, "PCM_16", (0.0,)),
    "overlap_3.7s_16k_dc.flac": (16000, 1, 59200, "PCM_16", (0.1,)),
    "resample_3.1s_44k.flac": (44100, 1, 136710, "PCM_16", (0.01,)),
    "stereo_2.6s_48k.flac": (48000, 2, 124800, "PCM_16", (0.0, 0.08)),
    "stereo_0.7s_44k_float.wav": (44100, 2, 30870, "FLOAT", (0.03, -0.05)),
    "long_10.4s_16k.flac": (16000, 1, 166400, "PCM_16", (0.0,)),
}


def synthesize(rate: int, channels: int, n: int, dc: tuple[float, ...], seed: int) -> np.ndarray:
    """Speech-like test audio: a gliding harmonic tone in syllable-like bursts, noise, pauses, DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    out = np.empty((n, channels))
    for c in range(channels):
        f0 = 110 + 60 * c + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
        envelope = np.clip(np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 6)), 0, None) ** 2
        noise = rng.standard_normal(n) * (0.01 + 0.03 * (envelope < 0.1))
        out[:, c] = 0.25 * envelope * voiced + noise + dc[c]
    return np.clip(out, -0.99, 0.99)


def write_recordings() -> None:
    import soundfile as sf

    (OUT / "rec").mkdir(parents=True, exist_ok=True)
    for i, (name, (rate, channels, n, subtype, dc)) in enumerate(RECORDINGS.items()):
        wave = synthesize(rate, channels, n, dc, seed=1000 + i)
        sf.write(OUT / "rec" / name, wave.astype(np.float32), rate, subtype=subtype)
        print(f"wrote rec/{name}: {n} samples × {channels} at {rate} Hz ({subtype})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", action="store_true", help="(re)write the test recordings first")
    args = parser.parse_args()

    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    import soundfile as sf
    import torch
    import upstream_shims

    from sertk_plugins.featurizers.imagebind.weights import random_audio_state_dict, tensors_digest

    torch.set_num_threads(2)
    if args.recordings or not (OUT / "rec").is_dir():
        write_recordings()
    upstream_shims.install()
    state = random_audio_state_dict(SEED)
    model = upstream_shims.build_audio_model(state)

    golden: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name in RECORDINGS:
            path = OUT / "rec" / name
            wave, rate = sf.read(path, dtype="float32", always_2d=True)
            if rate == 16000 and wave.shape[0] < 400:  # upstream crashes: golden = padded with silence
                path = Path(tmp) / (name + ".padded.wav")
                sf.write(path, np.pad(wave, ((0, 400 - wave.shape[0]), (0, 0))), rate, subtype="FLOAT")
            paths.append(path)
        with torch.no_grad():
            inputs = upstream_shims.load_and_transform_audio(paths)  # [n, 3, 1, 128, 204]
            embeddings = model(inputs)  # [n, 1024]
    for i, name in enumerate(RECORDINGS):
        rate, _, n, _, _ = RECORDINGS[name]
        feats = inputs[i, :, 0].numpy()
        if n / rate <= 2.0:
            feats = feats[:1]
        golden[f"features/{name}"] = feats.astype(np.float32)
        golden[f"embedding/{name}"] = embeddings[i].numpy().astype(np.float32)
    np.savez_compressed(OUT / "golden.npz", **golden)

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    info = {
        "made_by": "scripts/make_imagebind_golden.py (upstream's code through scripts/upstream_shims)",
        "weights": f"sertk_plugins.featurizers.imagebind.weights.random_audio_state_dict(seed={SEED})",
        "weights_tensors_sha256": tensors_digest(state),
        "versions": {d: version(d) for d in ("imagebind-unofficial", "torch", "torchaudio", "pytorchvideo",
                                            "soundfile", "numpy")},
        "recordings": {name: {"rate": r, "channels": c, "samples": n, "subtype": s}
                       for name, (r, c, n, s, _) in RECORDINGS.items()},
        "short_recordings": "recordings under 400 samples: upstream's output on the recording padded to 400",
        "features": "upstream's normalised model input [clips, 128, 204]; 1 clip when all clips coincide",
    }
    (OUT / "golden.json").write_text(json.dumps(info, indent=2) + "\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT}/golden.npz ({(OUT / 'golden.npz').stat().st_size / 1e6:.2f} MB); "
          f"tests/data/imagebind holds {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
