"""Optional extras: what ``pip install sertk[EXTRA]`` provides, whether it is installed, and the error when not.

A component that needs an optional package declares it with a class attribute, ``extra = "opensmile"``. ``sertk
list`` then says how to get the component when the package is missing (:func:`install_hint`), without importing
it (:func:`importlib.util.find_spec` looks the module up on ``sys.path`` only), and the component's constructor
calls :func:`require_extra`, so using it fails at once with a message naming the extra instead of an
``ImportError`` halfway through a run.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from sertk.errors import FeaturizerError, SertkError

__all__ = ["EXTRAS", "install_hint", "is_installed", "import_extra", "missing_extra", "require_extra"]

#: each of sertk's extras (setup.py ``extras_require``) → the top-level modules it installs
EXTRAS: dict[str, tuple[str, ...]] = {
    "opensmile": ("opensmile",),
    "hf": ("transformers",),
    "ray": ("ray",),
}


def is_installed(extra: str) -> bool:
    """Whether every module of ``extra`` can be found (not imported: finding is enough, and cheap)."""
    try:
        modules = EXTRAS[extra]
    except KeyError:
        raise ValueError(f"unknown extra {extra!r}; sertk's extras: {', '.join(EXTRAS)}") from None
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):  # a broken parent package, or a module without a spec
            return False
    return True


def install_hint(extra: str) -> str:
    return f"pip install sertk[{extra}]"


def missing_extra(cls: type) -> str | None:
    """The extra a component class declares (``cls.extra``) when it is not installed, else ``None``."""
    extra = getattr(cls, "extra", None)
    if not isinstance(extra, str) or extra not in EXTRAS:  # none, or a third-party plugin's own: not ours to check
        return None
    return None if is_installed(extra) else extra


def _error(extra: str, needed_by: str, error: type[SertkError], detail: str = "") -> SertkError:
    modules = ", ".join(EXTRAS[extra])
    return error(f"{needed_by} needs the optional package {modules}{detail}: {install_hint(extra)}")


def require_extra(extra: str, needed_by: str, error: type[SertkError] = FeaturizerError) -> None:
    """Raise ``error`` (a :class:`~sertk.errors.SertkError`) naming ``needed_by`` and the ``pip install`` line when
    ``extra`` is not installed. Call it in a constructor: it imports nothing."""
    if not is_installed(extra):
        raise _error(extra, needed_by, error)


def import_extra(extra: str, module: str, needed_by: str, error: type[SertkError] = FeaturizerError) -> ModuleType:
    """``import module`` (one of ``extra``'s), with an ``ImportError`` (missing or broken install) turned into
    ``error`` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _error(extra, needed_by, error, f" ({type(exc).__name__}: {exc})") from exc
