"""Where sertk writes results: a fresh place, or one that holds only what sertk itself wrote there.

A run folder (``sertk run --out DIR``):

- An explicit ``--out DIR`` must be new or empty; otherwise the run refuses before any work, naming the folder
  and the ways out (``--overwrite``, or another ``--out``).
- Every run records the files it writes in ``DIR/sertk-run.json``. ``--overwrite`` removes only the files in that
  record (each one logged); anything else in the way of this run's files (a user's own ``model/`` folder, a report
  edited by hand, a folder written by a sertk too old to keep the record) makes the run refuse, naming it. Other
  files in the folder are left alone.
- A folder that is only a default name (no ``--out``: ``runs/<dataset>-…-seed<seed>``, or the ``out`` of a
  ``--config`` file such as a saved run's) is never reused: when it exists and is not empty, the run takes the
  first free ``NAME-2``, ``NAME-3``, … and logs which.

One output file (``sertk embed --out FILE``): a new path, or ``--overwrite`` and a file that sertk wrote
(the caller says how to recognise one).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from sertk.errors import ConfigError

__all__ = ["RECORD", "RunFolder", "claim_run_folder", "check_output_file", "check_creatable"]

logger = logging.getLogger(__name__)

#: the record of the files a run wrote, inside its folder
RECORD = "sertk-run.json"
RECORD_FORMAT = "sertk-run/1"
_MAX_SUFFIX = 10_000


def check_creatable(path: Path, what: str, option: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` could be created: its nearest existing ancestor is a writable
    folder (``what`` names the path in the message, ``option`` the command-line option that sets it)."""
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # a dangling link cannot be created through
            raise ConfigError(f"cannot create {what} {path}: {ancestor} is a dangling symbolic link; "
                              f"choose another {option}")
        ancestor = ancestor.parent
    if ancestor != path and not ancestor.is_dir():
        raise ConfigError(f"cannot create {what} {path}: {ancestor} is a file, not a folder; choose another {option}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create {what} {path}: {ancestor} is not writable; choose another {option}")


@dataclasses.dataclass
class RunFolder:
    """A claimed run folder. ``previous``: the files an earlier run recorded there (removed by
    :meth:`remove_previous`); ``created``: whether this run made the folder (so it can take it back when it
    fails before writing anything)."""

    path: Path
    created: bool
    previous: list[str]

    def remove_previous(self) -> list[str]:
        """Delete the earlier run's recorded files (and the folders they leave empty); log and return them."""
        removed = []
        for name in sorted(self.previous, reverse=True):  # deepest first
            target = self.path / name
            with contextlib.suppress(FileNotFoundError):
                if target.is_file() or target.is_symlink():
                    target.unlink()
                    removed.append(name)
            parent = target.parent
            while parent != self.path and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        if removed:
            logger.info("--overwrite: removed %d file(s) of the earlier run in %s: %s", len(removed), self.path,
                        ", ".join(sorted(removed)))
        self.previous = []
        return removed

    def record(self, names: Iterable[str]) -> None:
        """Write the record of this run's files (paths relative to the folder, '/'-separated)."""
        from sertk.atomic import atomic_write_text

        data = {"format": RECORD_FORMAT, "files": sorted(set(names))}
        atomic_write_text(self.path / RECORD, json.dumps(data, indent=1) + "\n")

    def record_written(self) -> None:
        """Record the files actually present among those recorded before writing (:meth:`record`)."""
        names = [n for n in _recorded(self.path) if (self.path / n).is_file()]
        self.record(names)

    def discard(self) -> None:
        """Take back a folder this run created, if nothing was written into it."""
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only succeeds when empty


def claim_run_folder(out: Path, planned: Iterable[str], *, overwrite: bool = False,
                     fresh: bool = False) -> RunFolder:
    """Check and reserve the folder a run writes to, before any work is done.

    Parameters
    ----------
    out
        The folder asked for.
    planned
        Every file the run may write, relative to ``out`` ('/'-separated): only these may be replaced.
    overwrite
        Replace an earlier sertk run's files in ``out`` (never anything else).
    fresh
        ``out`` is only a default name: when it is taken, use the first free ``out-2``, ``out-3``, … instead
        of refusing (unless ``overwrite``).

    Raises
    ------
    ConfigError
        Naming the folder and the way out: it is a file, cannot be created, is not empty (without ``overwrite``),
        or holds files sertk did not write where this run would write.
    """
    planned = sorted(set(planned))
    if fresh and not overwrite and _taken(out):
        base = out
        for k in range(2, _MAX_SUFFIX):
            candidate = base.with_name(f"{base.name}-{k}")
            created = None if _taken(candidate) else _reserve(candidate)
            if created is not None:
                logger.info("%s already holds a run; writing this one to %s", base, candidate)
                return RunFolder(candidate, created=created, previous=[])
        raise ConfigError(f"no free output folder next to {base}; choose one with --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file; choose another --out")
    if not out.exists():
        check_creatable(out, "output folder", "--out")
        created = _reserve(out)
        if created is None:  # appeared meanwhile
            return claim_run_folder(out, planned, overwrite=overwrite, fresh=fresh)
        return RunFolder(out, created=created, previous=[])
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"output folder {out} is not writable; choose another --out")
    if not any(out.iterdir()):
        return RunFolder(out, created=False, previous=[])
    if not overwrite:
        shown = _listing(out)
        raise ConfigError(f"output folder {out} is not empty ({shown}); pass --overwrite to replace the files an "
                          f"earlier sertk run wrote there, or choose another --out")
    previous = _recorded(out)
    foreign = _in_the_way(out, planned, set(previous))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"output folder {out} holds {shown}, not written by sertk, where this run would write; "
                          f"--overwrite replaces only sertk's own files: move them away or choose another --out")
    return RunFolder(out, created=False, previous=[n for n in previous if (out / n).is_file()])


def check_output_file(path: Path, *, overwrite: bool, is_ours: Callable[[Path], bool], what: str) -> None:
    """Check, before any work, that ``path`` may be written: new, or (with ``overwrite``) a file sertk wrote.

    ``what`` describes such a file in the message (e.g. "an embeddings file written by sertk embed").
    """
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file name")
    if not path.exists() and not path.is_symlink():
        check_creatable(path, "output file", "--out")
        return
    if not overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it, or choose another --out")
    if not path.is_file() or not is_ours(path):
        raise ConfigError(f"{path} is not {what}, so --overwrite does not replace it; move it away or choose "
                          f"another --out")


# -- helpers --------------------------------------------------------------------------------------------------
def _taken(path: Path) -> bool:
    """Whether ``path`` is anything but missing or an empty folder."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def _reserve(path: Path) -> bool | None:
    """Create ``path`` (True), find it an empty folder (False), or None when something else took it first."""
    try:
        path.mkdir(parents=True)
        return True
    except FileExistsError:
        return False if path.is_dir() and not any(path.iterdir()) else None
    except OSError as exc:
        raise ConfigError(f"cannot create output folder {path}: {exc.strerror or exc}; choose another --out") from None


def _recorded(out: Path) -> list[str]:
    """The files an earlier run recorded in ``out`` (an unreadable record counts as none)."""
    try:
        data = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    files = data.get("files") if isinstance(data, dict) and data.get("format") == RECORD_FORMAT else None
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and _is_inside(f)]


def _is_inside(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _in_the_way(out: Path, planned: list[str], ours: set[str]) -> list[str]:
    """Entries of ``out`` at or under a top-level name this run writes that the earlier run did not record."""
    tops = {name.split("/")[0] for name in planned}
    foreign = []
    for top in sorted(tops):
        entry = out / top
        if not entry.exists() and not entry.is_symlink():
            continue
        if entry.is_dir() and not entry.is_symlink():
            for dirpath, dirnames, filenames in os.walk(entry):
                for name in sorted(filenames) + sorted(d for d in dirnames if (Path(dirpath) / d).is_symlink()):
                    relative = (Path(dirpath) / name).relative_to(out).as_posix()
                    if relative not in ours:
                        foreign.append(relative)
        elif top not in ours or not entry.is_file():
            foreign.append(top)
    return foreign


def _listing(out: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    return ", ".join(names[:4]) + (f", … ({len(names)} entries)" if len(names) > 4 else "")
