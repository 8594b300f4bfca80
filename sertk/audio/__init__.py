"""Audio building blocks shared by featurizers: decoding, resampling and a Kaldi-compatible filterbank.

- :mod:`sertk.audio.io` decodes any file :mod:`soundfile` reads into float32 ``[channels, samples]``.
- :mod:`sertk.audio.resample` is a windowed-sinc resampler in torch that reproduces torchaudio's default
  (``torchaudio.functional.resample``) without needing torchaudio.
- :mod:`sertk.audio.fbank` computes Kaldi-compatible log mel filterbanks in torch, batched, on CPU or GPU.

Importing this package imports neither torch nor soundfile; each module imports what it needs.
"""

from __future__ import annotations

__all__ = ["io", "resample", "fbank"]
