"""Every error sertk raises on purpose derives from :class:`SertkError`.

The CLI turns a ``SertkError`` into one clear line and a non-zero exit; anything else is a bug and shows a
traceback. Messages name the file, value or component at fault and say what to do about it.
"""

from __future__ import annotations


class SertkError(Exception):
    """Base class of sertk's user-facing errors."""


class ConfigError(SertkError, ValueError):
    """A run configuration, option or config file is invalid."""


class PluginError(SertkError):
    """A plugin could not be loaded or broke the hook contract."""


class UnknownComponentError(SertkError, KeyError):
    """No registered component has the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateComponentError(PluginError):
    """Two plugins registered components of one kind under one name."""


class DatasetError(SertkError):
    """A corpus is missing, malformed or inconsistent."""


class AudioError(SertkError):
    """An audio file could not be read or decoded."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot read audio file {path}: {reason}")
        self.path = path
        self.reason = reason


class FeaturizerError(SertkError):
    """A featurizer cannot run (missing weights, bad options, …)."""


class ModelError(SertkError):
    """A saved model is missing, malformed or does not fit the request."""


class CacheError(SertkError):
    """The embedding cache cannot be used (its folder is a file, read-only, …)."""


class DamagedCacheError(CacheError):
    """The embedding cache database is damaged; ``sertk cache clear`` deletes it."""

    def __init__(self, message: str, path: object, detail: str) -> None:
        super().__init__(message)
        self.path = path
        self.detail = detail
