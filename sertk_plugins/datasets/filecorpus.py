"""Helpers for the corpora whose labels live in their file names: ``emodb``, ``ravdess`` and ``cremad``.

The three loaders do the same things in the same order — find the corpus folder (the release folder or the folder
that holds it), list the audio, parse every file name against the corpus' naming scheme, compare the listing with
the published release, map labels to classes, check the audio — and should say so in the same words. What is
particular to a corpus (its scheme, its folders, its published figures) stays in its own module; what the three
share lives here, so that a fix in one place reaches all of them.

Names that do not follow a corpus' scheme are left out with one warning that counts them and names a few; hidden
files (``.*``, macOS ``._*``) are ignored without a word. The loaders record the names they left out in their
``skipped`` attribute (path → reason), so ``sertk data summary`` lists them with the unusable audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from sertk.datasummary import LIST_LIMIT
from sertk.errors import ConfigError, DatasetError
from sertk_plugins.datasets.manifest import class_mapping

__all__ = [
    "FULL_SHARE",
    "audio_files",
    "choice",
    "corpus_classes",
    "count_differences",
    "find_corpus_dir",
    "flag",
    "full_release_error",
    "name_differences",
    "optional_flag",
    "shorten",
    "wants_full_check",
    "warn_unparsed",
]

#: a copy holding at least this share of the full release's files is checked against the release by default (a
#: nearly complete copy is meant to be complete; a miniature or a chosen subset is not)
FULL_SHARE = 0.9
#: how many file names the warning about unparsed names spells out
SHOWN = 5


# -- options ---------------------------------------------------------------------------------------------------
def flag(name: str, value: Any) -> bool:
    """A boolean option; anything but ``true``/``false`` is a :class:`ConfigError` naming the option."""
    if not isinstance(value, bool):
        raise ConfigError(f"option {name}={value!r}: expected true or false")
    return value


def optional_flag(name: str, value: Any) -> bool | None:
    """A boolean option whose default ``None`` means "decide from the corpus"."""
    return None if value is None else flag(name, value)


def choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices`` (compared as given: option values are lower case), or a :class:`ConfigError`."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"option {name}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def corpus_classes(value: Any, *, corpus: str, labels: Sequence[str],
                   class_sets: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The ``classes`` option over a corpus' own labels: a class-set name, a list of labels to keep, or a mapping
    ``{label = class}`` (unlisted labels are left out). Unknown names are a :class:`ConfigError` that lists the
    corpus' labels, so a typo never silently drops a class."""
    if isinstance(value, str):
        try:
            return dict(class_sets[value])
        except KeyError:
            raise ConfigError(f"option classes={value!r}: unknown class set; known: {', '.join(class_sets)}, "
                              f"or a list of labels ({' '.join(labels)}), or a mapping {{label = class}}") from None
    if value is None:
        raise ConfigError(f"option classes: expected a class-set name ({', '.join(class_sets)}), a list of "
                          "labels or a mapping {label = class}")
    mapping = class_mapping(value)
    assert mapping is not None
    unknown = sorted(set(mapping) - set(labels))
    if unknown:
        raise ConfigError(f"option classes: unknown {corpus} label(s) {', '.join(unknown)}; "
                          f"the labels are {' '.join(labels)}")
    return mapping


# -- files -----------------------------------------------------------------------------------------------------
def find_corpus_dir(root: Path, *, corpus: str, marker: str, layout: str) -> Path:
    """The folder that holds ``marker/``: ``root`` itself, its parent when ``root`` *is* ``marker/``, or the one
    child of ``root`` that holds it (the release folder inside the folder you downloaded to).

    Raises
    ------
    DatasetError
        ``root`` is missing or not a folder; several children hold a copy (which one is meant is not ours to
        guess); none does (the message shows ``layout``, the expected tree).
    """
    if not root.exists():
        raise DatasetError(f"{corpus} root {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"{corpus} root {root} is not a folder; pass the folder that holds {marker}/")
    if (root / marker).is_dir():
        return root
    if root.name == marker:
        return root.parent
    children = sorted(p for p in root.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and (p / marker).is_dir())
    if len(children) == 1:
        return children[0]
    if children:
        raise DatasetError(f"{root} holds several {corpus} copies ({', '.join(p.name for p in children)}); "
                           "pass the one to use")
    raise DatasetError(f"no {marker}/ folder under {root}: expected {layout}")


def audio_files(folder: Path, suffix: str = ".wav") -> list[Path]:
    """The files directly in ``folder`` whose name ends in ``suffix`` (any case), hidden ones left out, sorted.

    A dangling link is kept: the audio check then reports it as missing instead of it vanishing unseen.
    """
    return sorted(p for p in folder.iterdir()
                  if not p.name.startswith(".") and p.name.lower().endswith(suffix)
                  and (p.is_file() or p.is_symlink()))


def scan_names(folder: Path, parse: Callable[[Path], Any], *, corpus: str, example: str,
               log: logging.Logger) -> tuple[list[Any], dict[Path, str]]:
    """Parse the name of every audio file in ``folder``: ``(parsed, unparsed)``, where ``parse`` returns a record or
    a string saying why the name does not fit. Warns once about the unparsed; no parsed file at all is an error."""
    parsed: list[Any] = []
    unparsed: dict[Path, str] = {}
    for path in audio_files(folder):
        record = parse(path)
        if isinstance(record, str):
            unparsed[path] = f"not {'an' if corpus[0] in 'AEIOU' else 'a'} {corpus} file name: {record}"
        else:
            parsed.append(record)
    warn_unparsed(unparsed, corpus=corpus, example=example, log=log)
    if not parsed:
        raise DatasetError(f"no {corpus} files in {folder} (expected names like {example})"
                           + (f"; {len(unparsed)} .wav file(s) there do not follow the naming scheme"
                              if unparsed else ""))
    return parsed, unparsed


def warn_unparsed(unparsed: Mapping[Path, str], *, corpus: str, example: str, log: logging.Logger) -> None:
    """One warning for the files whose names do not follow the scheme: how many, and the first few names
    (every name with its reason at debug level)."""
    if not unparsed:
        return
    names = sorted(p.name for p in unparsed)
    log.warning("%s: leaving out %d file(s) whose names do not follow its naming scheme (like %s): %s", corpus,
                len(names), example, shorten(names, SHOWN))
    log.debug("%s: every file left out: %s", corpus, "; ".join(f"{p} ({why})" for p, why in unparsed.items()))


# -- the full-release check ------------------------------------------------------------------------------------
def wants_full_check(option: bool | None, *, n_found: int, n_expected: int, named_like_release: bool) -> bool:
    """Whether to compare a copy with the full release: as the ``full_release`` option says, else when the folder
    carries the release's name or the copy holds at least :data:`FULL_SHARE` of the release's files."""
    if option is not None:
        return option
    return named_like_release or n_found >= FULL_SHARE * n_expected


def shorten(items: Sequence[str], limit: int = LIST_LIMIT) -> str:
    """``"a, b, c and 4 more"``."""
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def count_differences(found: Mapping[str, int], expected: Mapping[str, int]) -> list[str]:
    """``["anger 126 (expected 127)", "joy 3 (expected none)"]``: every count that is not as published."""
    diffs = [f"{key} {found.get(key, 0)} (expected {n})" for key, n in expected.items() if found.get(key, 0) != n]
    diffs += [f"{key} {n} (expected none)" for key, n in sorted(found.items()) if key not in expected and n]
    return diffs


def name_differences(found: Collection[str], expected: Collection[str], noun: str = "file") -> list[str]:
    """``["2 file(s) missing: a, b", "1 unexpected file(s): c"]``, sorted, long lists shortened."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    problems = []
    if missing:
        problems.append(f"{len(missing)} {noun}(s) missing: {shorten(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected {noun}(s): {shorten(unexpected)}")
    return problems


def full_release_error(corpus: str, where: Path, release: str, problems: Sequence[str]) -> DatasetError:
    """The error for a copy that is not the full release: every difference, and how to load it anyway."""
    return DatasetError(
        f"{corpus} at {where} does not match the full release ({release}): {'; '.join(problems)}. Restore the "
        f"missing parts, or pass full_release=false (`sertk run -o dataset.full_release=false`, "
        f"`sertk data summary -o full_release=false`) to load a partial copy on purpose"
    )
