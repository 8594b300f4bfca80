"""The ``hf`` featurizer: pooled hidden states of a Hugging Face ``transformers`` speech encoder.

wav2vec 2.0, HuBERT, WavLM, Data2Vec-Audio and Whisper's encoder, by hub id or local folder, through the
checkpoint's own feature extractor (``preprocessor_config.json``: ``do_normalize`` and the rest), at 16 kHz.

Modules, one concept each: :mod:`.model` (resolving a hub id or folder to files, weights digests, loading),
:mod:`.windows` (the window rule for long recordings, reading mono 16 kHz windows), :mod:`.batching` (which
windows may share a forward pass without changing any embedding), :mod:`.pooling` (every layer's frame statistics
from one pass; selecting a layer and pooling), :mod:`.layer_store` (those statistics kept per model, so a layer
sweep runs the model once). Importing this package imports neither torch nor transformers (``pip install
sertk[hf]`` provides transformers); the featurizer loads them on first use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import sertk
from sertk.errors import ConfigError
from sertk.extras import require_extra
from sertk_plugins.featurizers.hf.pooling import POOLINGS

logger = logging.getLogger(__name__)

__all__ = ["HFFeaturizer"]

DTYPES = ("float32", "bfloat16", "float16", "auto")
#: bump when a change of this implementation changes embeddings (it is part of the fingerprint)
IMPLEMENTATION_VERSION = 1
#: Whisper's encoder gives one frame per 320 samples (20 ms) of its 30 s input
WHISPER_SAMPLES_PER_FRAME = 320
#: padded samples per forward pass (batch × longest window): 64 s of audio on the CPU, 16× that on a GPU
CPU_FORWARD_BUDGET = 64 * 16000
GPU_FORWARD_BUDGET = 16 * CPU_FORWARD_BUDGET
#: windows decoded ahead of the model, at most (and at most this many samples): bounds memory on long files
_PENDING_WINDOWS = 256
_PENDING_SAMPLES = 4 * CPU_FORWARD_BUDGET


class HFFeaturizer(sertk.Featurizer):
    """Pooled hidden states of a Hugging Face speech encoder (wav2vec 2.0, HuBERT, WavLM, data2vec, Whisper).

    Parameters
    ----------
    model
        A hub id (``facebook/wav2vec2-base``, ``microsoft/wavlm-base-plus``, ``openai/whisper-small``, …) or a
        local folder written by ``save_pretrained`` (``config.json``, ``preprocessor_config.json``, weights).
    revision
        Hub branch, tag or commit (default: the main branch); the commit used is in the fingerprint.
    layer
        ``"last"`` (default: ``last_hidden_state``, what EmoBox and audEERING pool), an index into the
        ``num_hidden_layers + 1`` hidden states (0: the encoder's input, i.e. the projected convolutional features
        plus positions; ``num_hidden_layers``: ``last_hidden_state``, after the final layer norm in
        stable-layer-norm checkpoints; negative counts from the end), or ``"mean"``: the mean of all of them
        (SUPERB's weighted sum with equal weights).
    pooling
        ``"mean"`` over frames (``hidden`` values) or ``"mean+std"`` (mean and population standard deviation,
        ``2 × hidden``).
    dtype
        ``"float32"`` (default), ``"bfloat16"``, ``"float16"`` (GPU only: refused on the CPU, where torch emulates
        it on almost every CPU, slower than float32, and bfloat16 saves as much memory with float32's range), or
        ``"auto"``: bfloat16 on a GPU and on CPUs that multiply it in hardware (AMX, AVX512-BF16), else float32.
    device
        ``"auto"`` (CUDA when available, else the CPU) or a torch device string.
    chunk_seconds
        Window length for long recordings (default 30; Whisper: at most 30): see :mod:`.windows` for the rule.
    batch_size
        Files per :meth:`embed` call the host sends; ``None``: 32 on the CPU, 128 on a GPU.
    local_files_only
        Use the Hugging Face cache only, never the network (as ``HF_HUB_OFFLINE=1``).
    layer_store
        Where every layer's statistics are kept so that another ``layer`` or ``pooling`` needs no forward pass
        (:mod:`.layer_store`): ``"auto"`` (``<sertk cache folder>/hf-layers``), a folder, or ``"none"``.
    """

    name = "hf"
    description = ("Hugging Face speech encoders (wav2vec2, HuBERT, WavLM, data2vec, Whisper encoder): a layer's "
                   "hidden states, mean or mean+std pooled")
    extra = "hf"
    standardize = True  # hidden-state scales differ widely between dimensions (and layers)

    def __init__(
        self,
        model: str | None = None,
        revision: str | None = None,
        layer: int | str = "last",
        pooling: str = "mean",
        dtype: str = "float32",
        device: str = "auto",
        chunk_seconds: float = 30.0,
        batch_size: int | None = None,
        local_files_only: bool = False,
        layer_store: str = "auto",
    ) -> None:
        require_extra("hf", "featurizer 'hf'")
        if not isinstance(model, str) or not model:
            raise ConfigError("hf: option model is required: a hub id such as facebook/wav2vec2-base, or a local "
                              "folder written by save_pretrained (-o featurizer.model=DIR)")
        if revision is not None and (not isinstance(revision, str) or not revision):
            raise ConfigError(f"hf: revision must be a branch, tag or commit name, got {revision!r}")
        if not (layer in ("last", "mean") or (isinstance(layer, int) and not isinstance(layer, bool))):
            raise ConfigError(f"hf: layer must be an index, 'last' or 'mean', got {layer!r}")
        if pooling not in POOLINGS:
            raise ConfigError(f"hf: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if dtype not in DTYPES:
            raise ConfigError(f"hf: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, (int, float)) or \
                not 1.0 <= chunk_seconds <= 3600:
            raise ConfigError(f"hf: chunk_seconds must be a number of seconds in [1, 3600], got {chunk_seconds!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise ConfigError(f"hf: batch_size must be a positive integer (or left out), got {batch_size!r}")
        if not isinstance(layer_store, str) or not layer_store:
            raise ConfigError(f"hf: layer_store must be 'auto', 'none' or a folder, got {layer_store!r}")
        self.model = model
        self.revision = revision
        self.layer = layer
        self.pooling = pooling
        self.device = device
        self.chunk_seconds = float(chunk_seconds)
        self.local_files_only = bool(local_files_only)
        self._dtype_option = dtype
        self._batch_size = batch_size
        self._layer_store_option = layer_store
        self._source: Any = None
        self._config: dict[str, Any] | None = None
        self._torch_device: Any = None
        self._encoder: Any = None
        self._extractor: Any = None
        self._store: Any = None
        self._store_checked = False
        self._fingerprint: dict[str, Any] | None = None

    # -- what the model is ---------------------------------------------------------------------------------
    def source(self):
        """The model's :class:`~.model.ModelSource` (resolved, downloaded if needed, on first use)."""
        if self._source is None:
            from sertk_plugins.featurizers.hf.model import read_config, resolve

            self._source = resolve(self.model, self.revision, self.local_files_only)
            self._config = read_config(self._source.folder)
            self._check_against_config()
        return self._source

    def config(self) -> dict[str, Any]:
        """The model's ``config.json``."""
        self.source()
        assert self._config is not None
        return self._config

    @property
    def whisper(self) -> bool:
        return self.config()["model_type"] == "whisper"

    @property
    def hidden_size(self) -> int:
        config = self.config()
        return int(config["d_model"] if self.whisper else config["hidden_size"])

    @property
    def num_hidden_layers(self) -> int:
        config = self.config()
        return int(config["encoder_layers"] if self.whisper else config["num_hidden_layers"])

    @property
    def view(self) -> int:
        """The chosen layer as a view index of :mod:`.pooling` (hidden-state index; ``layers + 1``: their mean)."""
        if self.layer == "mean":
            return self.num_hidden_layers + 1
        if self.layer == "last":
            return self.num_hidden_layers
        assert isinstance(self.layer, int)
        return self.layer % (self.num_hidden_layers + 1)

    def batching_rule(self) -> str:
        from sertk_plugins.featurizers.hf.batching import batching_rule
        from sertk_plugins.featurizers.hf.model import family_of

        return batching_rule(family_of(self.config()), self.config())

    def _check_against_config(self) -> None:
        layers = self.num_hidden_layers
        if isinstance(self.layer, int) and not -(layers + 1) <= self.layer <= layers:
            raise ConfigError(f"hf: layer {self.layer} is out of range for {self.model!r}, which has "
                              f"{layers + 1} hidden states (0 … {layers}; or 'last', 'mean')")
        if self.whisper and self.chunk_seconds > 30:
            raise ConfigError(f"hf: chunk_seconds must be at most 30 for Whisper (its input is 30 s), got "
                              f"{self.chunk_seconds:g}")

    # -- the contract ----------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.hidden_size * (2 if self.pooling == "mean+std" else 1)

    @property
    def batch_size(self) -> int:  # type: ignore[override]  # the base class's plain default, resolved per device
        if self._batch_size is not None:
            return self._batch_size
        return 128 if self.torch_device().type == "cuda" else 32

    @property
    def dtype(self) -> str:
        """The dtype the model runs in (``"auto"`` resolved; float16 on the CPU refused)."""
        device = self.torch_device()
        if self._dtype_option == "auto":
            from sertk.machine import bf16_is_native

            return "bfloat16" if device.type == "cuda" or bf16_is_native() else "float32"
        if self._dtype_option == "float16" and device.type == "cpu":
            raise ConfigError("hf: dtype=float16 runs on a GPU only; on the CPU use bfloat16 (fast on CPUs with "
                              "AMX or AVX512-BF16) or float32 (default), or dtype=auto")
        return self._dtype_option

    def torch_device(self) -> Any:
        """The :class:`torch.device` the model runs on (``device`` resolved; imports torch)."""
        if self._torch_device is None:
            import torch

            self._torch_device = torch.device(("cuda" if torch.cuda.is_available() else "cpu")
                                              if self.device == "auto" else self.device)
        return self._torch_device

    def model_fingerprint(self) -> dict[str, Any]:
        """Everything that changes the model's hidden states, before a layer and pooling are chosen (the layer
        store's key)."""
        if self._fingerprint is None:
            from sertk_plugins.featurizers.hf.model import PREPROCESSOR_FILE, weights_digests
            from sertk_plugins.featurizers.hf.windows import SAMPLE_RATE, WINDOW_RULE

            source = self.source()
            folder = source.folder
            preprocessor = folder / PREPROCESSOR_FILE
            try:
                normalisation = json.loads(preprocessor.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                normalisation = None  # loading the model says what is wrong with it
            self._fingerprint = {
                "name": self.name,
                "implementation": IMPLEMENTATION_VERSION,
                "model": source.model,
                "revision": source.revision,
                "commit": source.commit,
                "model_type": self.config()["model_type"],
                "config_sha256": hashlib.sha256((folder / "config.json").read_bytes()).hexdigest(),
                "weights_sha256": weights_digests(folder),
                "normalisation": normalisation,  # preprocessor_config.json: do_normalize, mel settings, …
                "sample_rate": SAMPLE_RATE,
                "downmix": "mean",
                "window": {"rule": WINDOW_RULE, "seconds": self.chunk_seconds},
                "dtype": self.dtype,
            }
        return self._fingerprint

    def fingerprint(self) -> Mapping[str, Any]:
        view = self.view
        return {**self.model_fingerprint(),
                "layer": "mean" if view == self.num_hidden_layers + 1 else view,
                "pooling": self.pooling}

    def embed(self, paths: Sequence[Path]) -> np.ndarray:
        """Embed files: float32 ``(len(paths), dim)``.

        Rows already in the layer store are sliced; the others come from one forward pass per batch of windows
        (:mod:`.batching`) and are stored. An unreadable file raises :class:`sertk.errors.AudioError` naming it.
        """
        from sertk_plugins.featurizers.hf.pooling import select

        paths = [Path(p) for p in paths]
        if not paths:
            return np.zeros((0, self.dim), dtype=np.float32)
        store = self.layer_store()
        keys = store.keys(paths) if store is not None else [str(i) for i in range(len(paths))]
        rows: dict[str, np.ndarray] = store.get(keys) if store is not None else {}
        todo = {key: path for key, path in zip(keys, paths) if key not in rows}
        if todo:
            fresh = dict(zip(todo, self.all_views_rows(list(todo.values()))))
            if store is not None:
                store.put(fresh)
            rows.update(fresh)
        return select(np.stack([rows[key] for key in keys]), self.view, self.pooling, self.hidden_size)

    def layer_store(self):
        """The :class:`~.layer_store.LayerStore` of this model, or ``None`` with ``layer_store="none"``."""
        if not self._store_checked:
            from sertk_plugins.featurizers.hf.layer_store import LayerStore, store_folder

            folder = store_folder(self._layer_store_option)
            self._store = LayerStore(folder, self.model_fingerprint()) if folder is not None else None
            self._store_checked = True
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    # -- the model -------------------------------------------------------------------------------------------
    def encoder(self) -> tuple[Any, Any]:
        """The loaded encoder (eval mode) and the checkpoint's feature extractor, on first use."""
        if self._encoder is None:
            import torch

            from sertk_plugins.featurizers.hf.model import load_encoder

            self._encoder, self._extractor = load_encoder(self.source(), self.torch_device(),
                                                          getattr(torch, self.dtype))
        return self._encoder, self._extractor

    def all_views_rows(self, paths: Sequence[Path]) -> list[np.ndarray]:
        """Per file, the :func:`~.pooling.all_views_row` of every hidden state and their mean, float32."""
        from sertk_plugins.featurizers.hf.pooling import all_views_row

        per_file: list[list[Any]] = [[] for _ in paths]  # each file's window statistics, in window order
        for file_index, window_index, stats in self._window_stats(paths):
            windows = per_file[file_index]
            windows.extend([None] * (window_index + 1 - len(windows)))
            windows[window_index] = stats
        rows = []
        for windows in per_file:
            total = windows[0]
            for stats in windows[1:]:
                total = total.merge(stats)
            rows.append(all_views_row(total))
        return rows

    def _window_stats(self, paths: Sequence[Path]) -> Iterator[tuple[int, int, Any]]:
        """(file, window, :class:`~.pooling.FrameStats`) for every window of every file, decoding windows a
        bounded number at a time."""
        from sertk_plugins.featurizers.hf.windows import SAMPLE_RATE, read_windows

        window = int(round(self.chunk_seconds * SAMPLE_RATE))
        pending: list[tuple[int, int, np.ndarray]] = []
        for file_index, path in enumerate(paths):
            for window_index, wave in enumerate(read_windows(path, window)):
                pending.append((file_index, window_index, wave))
                if len(pending) >= _PENDING_WINDOWS or sum(w.size for *_, w in pending) >= _PENDING_SAMPLES:
                    yield from self._run(pending)
                    pending = []
        if pending:
            yield from self._run(pending)

    def _run(self, pending: list[tuple[int, int, np.ndarray]]) -> Iterator[tuple[int, int, Any]]:
        from sertk_plugins.featurizers.hf.batching import plan_batches

        waves = [self._long_enough(wave) for *_, wave in pending]
        rule = self.batching_rule()
        budget = GPU_FORWARD_BUDGET if self.torch_device().type == "cuda" else CPU_FORWARD_BUDGET
        for batch in plan_batches([w.size for w in waves], rule, budget):
            for index, stats in zip(batch.windows, self._forward([waves[i] for i in batch.windows], rule)):
                yield pending[index][0], pending[index][1], stats

    def _long_enough(self, wave: np.ndarray) -> np.ndarray:
        """A window shorter than the convolutional encoder's receptive field (25 ms for wav2vec 2.0), zero-padded
        to it at the end: the model cannot give a single frame for less."""
        if self.whisper:
            return wave
        field = receptive_field(self.config())
        if wave.size >= field:
            return wave
        return np.concatenate([wave, np.zeros(field - wave.size, dtype=np.float32)])

    def _forward(self, waves: list[np.ndarray], rule: str) -> list[Any]:
        """One forward pass over ``waves`` (windows at 16 kHz) under ``rule``: each window's frame statistics."""
        import torch

        from sertk_plugins.featurizers.hf.pooling import frame_stats
        from sertk_plugins.featurizers.hf.windows import SAMPLE_RATE

        model, extractor = self.encoder()
        device, dtype = self.torch_device(), getattr(torch, self.dtype)
        lengths = [w.size for w in waves]
        with torch.inference_mode():
            if rule == "whisper":
                inputs = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                out = model(input_features=inputs["input_features"].to(device, dtype), output_hidden_states=True)
                limit = out.hidden_states[0].shape[1]
                frames = [min(limit, max(1, math.ceil(n / WHISPER_SAMPLES_PER_FRAME))) for n in lengths]
            elif rule == "padded":
                inputs = extractor(waves, sampling_rate=SAMPLE_RATE, padding=True, return_attention_mask=True,
                                   return_tensors="pt")
                out = model(input_values=inputs["input_values"].to(device, dtype),
                            attention_mask=inputs["attention_mask"].to(device), output_hidden_states=True)
                frames = [int(n) for n in model._get_feat_extract_output_lengths(torch.tensor(lengths))]
            else:  # equal-length: never padded
                assert len(set(lengths)) == 1, "equal-length batches hold windows of one length"
                inputs = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                out = model(input_values=inputs["input_values"].to(device, dtype), output_hidden_states=True)
                frames = [out.hidden_states[0].shape[1]] * len(waves)
            # the last entry is last_hidden_state: after the final layer norm of stable-layer-norm checkpoints
            # (transformers 5 records that layer's output before it; transformers 4 returned the normed one)
            states = [*out.hidden_states[:-1], out.last_hidden_state]
            return [frame_stats([h[i] for h in states], frames[i]) for i in range(len(waves))]


def receptive_field(config: Mapping[str, Any]) -> int:
    """Samples the convolutional feature encoder needs for one output frame (400 for wav2vec 2.0)."""
    field, stride = 1, 1
    for kernel, step in zip(config.get("conv_kernel", ()), config.get("conv_stride", ())):
        field += (int(kernel) - 1) * stride
        stride *= int(step)
    return field


@sertk.hookimpl
def sertk_register_featurizers(register) -> None:
    register(HFFeaturizer)
