"""Which model: a hub id or a local folder resolved to files on disk, their digests, and the loaded encoder.

:func:`resolve` turns the ``model`` option into a :class:`ModelSource`: a local folder as it is, or a hub id
(with ``revision``: a branch, tag or commit) downloaded into the Hugging Face cache by :mod:`huggingface_hub` —
only the configuration, the preprocessor configuration and one set of weights (safetensors when the repository
has them, else ``pytorch_model*.bin``). Offline mode is honoured: ``HF_HUB_OFFLINE=1`` or the featurizer's
``local_files_only`` option serve the cache only, and a model missing there is a
:class:`~sertk.errors.FeaturizerError` naming it. The weights' SHA-256 digests (remembered per file size and
modification time within a process) go into the fingerprint, so a changed checkpoint never meets stale
embeddings.

:func:`load_encoder` builds the encoder (``AutoModel``; Whisper's encoder alone) and the checkpoint's own feature
extractor (``AutoFeatureExtractor``, from ``preprocessor_config.json``) from those files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sertk.errors import FeaturizerError
from sertk.extras import import_extra

logger = logging.getLogger(__name__)

__all__ = ["FAMILIES", "ModelSource", "ModelFamily", "family_of", "load_encoder", "read_config", "resolve",
           "weights_digests"]

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
_SAFETENSORS = ("*.safetensors", "*.safetensors.index.json")
_TORCH_BIN = ("pytorch_model*.bin", "pytorch_model.bin.index.json")
#: a hub id: ``name`` or ``owner/name`` (anything else that is not a folder is a mistyped path)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """What the featurizer needs to know about an architecture (``config.json``'s ``model_type``).

    Attributes
    ----------
    model_type
        ``config.json``'s ``model_type``.
    whisper
        Log-mel input padded to 30 s, encoder only, no attention mask (see :mod:`.batching`).
    mask_safe_with_layer_norm
        Whether padding with an attention mask leaves each item's output unchanged when the convolutional feature
        encoder uses layer norm (``feat_extract_norm == "layer"``). wav2vec 2.0, HuBERT and WavLM zero the padded
        frames before the positional convolution; Data2Vec-Audio does not (transformers#25621; measured here:
        up to 80 % relative change), so it is never padded.
    """

    model_type: str
    whisper: bool = False
    mask_safe_with_layer_norm: bool = False


FAMILIES: dict[str, ModelFamily] = {f.model_type: f for f in (
    ModelFamily("wav2vec2", mask_safe_with_layer_norm=True),
    ModelFamily("hubert", mask_safe_with_layer_norm=True),
    ModelFamily("wavlm", mask_safe_with_layer_norm=True),
    ModelFamily("data2vec-audio"),
    ModelFamily("whisper", whisper=True),
)}


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """A model's files on disk and its identity.

    Attributes
    ----------
    model
        The option as given: a hub id, or the local folder's name.
    folder
        The folder holding ``config.json``, ``preprocessor_config.json`` and the weights.
    revision
        The revision asked for (hub only; ``None``: the default branch).
    commit
        The hub commit the files are from (the snapshot's name), ``None`` for a local folder.
    local
        Whether ``model`` named a local folder.
    """

    model: str
    folder: Path
    revision: str | None
    commit: str | None
    local: bool


def resolve(model: str, revision: str | None = None, local_files_only: bool = False) -> ModelSource:
    """The files of ``model`` (a local folder, else a hub id), downloaded if needed and allowed.

    Raises
    ------
    FeaturizerError
        Naming the model: a folder without ``config.json``, a hub id that is not cached while offline, or one the
        hub does not have (or cannot be reached for).
    """
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / CONFIG_FILE).is_file():
            raise FeaturizerError(f"hf: model folder {folder} has no {CONFIG_FILE}: save a model there with "
                                  "model.save_pretrained(folder) and feature_extractor.save_pretrained(folder)")
        return ModelSource(folder.name or str(folder), folder, revision, None, local=True)
    if not _HUB_ID.match(model):
        raise FeaturizerError(f"hf: model {model!r} is not a folder (no such directory) and not a hub id "
                              "like 'facebook/wav2vec2-base'")
    snapshot = _download(model, revision, local_files_only)
    return ModelSource(model, snapshot, revision, snapshot.name, local=False)


def _offline(local_files_only: bool) -> bool:
    import huggingface_hub.constants

    return bool(local_files_only or huggingface_hub.constants.HF_HUB_OFFLINE)


def _download(model: str, revision: str | None, local_files_only: bool) -> Path:
    import huggingface_hub
    from huggingface_hub import errors

    offline = _offline(local_files_only)
    where = f"model {model!r}" + (f" (revision {revision!r})" if revision else "")
    try:
        folder = Path(huggingface_hub.snapshot_download(
            model, revision=revision, local_files_only=offline,
            allow_patterns=[CONFIG_FILE, PREPROCESSOR_FILE, *_SAFETENSORS]))
        if not _weight_files(folder):
            folder = Path(huggingface_hub.snapshot_download(
                model, revision=revision, local_files_only=offline,
                allow_patterns=[CONFIG_FILE, PREPROCESSOR_FILE, *_TORCH_BIN]))
    except errors.LocalEntryNotFoundError as exc:
        how = ("offline mode is on (HF_HUB_OFFLINE=1 or local_files_only)" if offline
               else "the hub cannot be reached")
        cache = huggingface_hub.constants.HF_HUB_CACHE
        raise FeaturizerError(f"hf: {where} is not in the Hugging Face cache ({cache}) and {how}: download it "
                              f"once online, or pass a local folder as model=DIR ({type(exc).__name__})") from None
    except errors.RepositoryNotFoundError:
        raise FeaturizerError(f"hf: {where}: no such model on the Hugging Face hub (or it is private: log in "
                              "with `hf auth login`)") from None
    except errors.RevisionNotFoundError:
        raise FeaturizerError(f"hf: {where}: the hub has no such revision (a branch, tag or commit)") from None
    except (errors.HfHubHTTPError, OSError) as exc:
        raise FeaturizerError(f"hf: cannot download {where}: {type(exc).__name__}: {exc}") from None
    if not _weight_files(folder):
        raise FeaturizerError(f"hf: {where} has no weights in safetensors or pytorch_model.bin format")
    return folder


def _weight_files(folder: Path) -> list[Path]:
    """The weight files ``from_pretrained`` loads: safetensors when present, else ``pytorch_model*.bin``."""
    for patterns in (("*.safetensors",), ("pytorch_model*.bin",)):
        found = sorted(p for pattern in patterns for p in folder.glob(pattern) if p.is_file())
        if found:
            return found
    return []


def weights_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of each weight file in ``folder``, by file name (what ``sha256sum`` prints)."""
    files = _weight_files(folder)
    if not files:
        raise FeaturizerError(f"hf: model folder {folder} has no weights (model.safetensors or pytorch_model.bin)")
    out = {}
    for path in files:
        stat = path.stat()
        out[path.name] = _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return out


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a rewritten file is re-hashed
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as a dict, with an error naming the folder when it is not a supported speech encoder."""
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeaturizerError(f"hf: cannot read {path}: {exc}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in FAMILIES:
        raise FeaturizerError(f"hf: {path} has model_type {model_type!r}; supported: {', '.join(FAMILIES)}")
    return config


def family_of(config: dict[str, Any]) -> ModelFamily:
    return FAMILIES[config["model_type"]]


def load_encoder(source: ModelSource, device: Any, dtype: Any) -> tuple[Any, Any]:
    """The encoder (eval mode, on ``device`` in ``dtype``) and the checkpoint's feature extractor."""
    transformers = import_extra("hf", "transformers", "featurizer 'hf'")
    folder = source.folder
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise FeaturizerError(f"hf: model folder {folder} has no {PREPROCESSOR_FILE} (the feature extractor's "
                              "settings, e.g. do_normalize): save it with feature_extractor.save_pretrained(folder)")
    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(str(folder))
        model = transformers.AutoModel.from_pretrained(str(folder), dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise FeaturizerError(f"hf: cannot load model {source.model!r} from {folder}: {type(exc).__name__}: "
                              f"{exc}") from None
    if family_of(read_config(folder)).whisper:
        model = model.get_encoder()  # the decoder is never used
    model = model.to(device).eval().requires_grad_(False)
    logger.info("loaded %s %r from %s on %s (%s)", type(model).__name__, source.model, folder, device, dtype)
    return model, extractor
