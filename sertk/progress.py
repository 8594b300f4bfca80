"""Progress bars for long stages; only the CLI turns them on.

Library code wraps its loops in :func:`progress`; the default (no CLI) shows bars only on a terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_enabled: bool | None = None


def configure(enabled: bool | None) -> None:
    """``True``/``False`` forces bars on or off; ``None`` shows them when stderr is a terminal."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return sys.stderr.isatty() if _enabled is None else _enabled


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when bars are enabled."""
    if not enabled():
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


def bar(total: float | None, desc: str = "", unit: str = "it", delay: float = 0.0):
    """A manual tqdm bar (``update(n)``, ``set_postfix_str(s)``, ``close()``), or a silent stand-in when bars are
    off; ``delay`` seconds pass before it is first drawn (so short work draws nothing)."""
    if not enabled():
        return _NullBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True, delay=delay)


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass
