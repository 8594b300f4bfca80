"""Dataset ``folder``: your own recordings sorted into one folder per label.

::

    my-corpus/                      root
    ├── angry/                      the label is the folder name
    │   ├── spk1_001.wav
    │   ├── spk2_004.flac           any format soundfile reads: wav flac ogg opus mp3 aiff au caf w64 rf64
    │   └── session2/spk1_009.wav   sub-folders are searched too
    ├── happy/
    │   └── …
    └── speakers.csv                optional: path,speaker[,group]

Hidden files and folders (``.*``, macOS ``._*``) and files that are not audio are ignored.

Speakers come from one of:

- ``speaker_regex``: a regular expression searched in each file name, with a named group ``speaker`` (and
  optionally ``group``), e.g. ``-o 'speaker_regex=^(?P<speaker>[^_]+)_'``;
- ``speakers``: a CSV file with the columns ``path`` (relative to ``root``, like ``angry/spk1_001.wav``, or just
  the file name when that is unique) and ``speaker`` (and optionally ``group``);
- neither: every utterance gets the speaker ``"unknown"`` (speaker-independent protocols then cannot split).

The group (the fold key of leave-one-group-out) is the speaker unless the regex or CSV gives one. A file that the
regex does not match, or that the CSV does not list, is an error that names it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import sertk
from sertk import Dataset, DatasetError, Utterance
from sertk.datasummary import LIST_LIMIT, check_audio_files, handle_bad_audio, validate_missing_policy
from sertk.errors import ConfigError
from sertk_plugins.datasets.manifest import UNKNOWN_SPEAKER, class_mapping, raise_row_errors, read_table

logger = logging.getLogger(__name__)

__all__ = ["FolderDataset", "AUDIO_EXTENSIONS"]

#: file name extensions taken for audio (formats that libsndfile decodes)
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc",
                                     ".au", ".snd", ".caf", ".w64", ".rf64")


def _listing(items: Sequence[str]) -> str:
    more = f" and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else ""
    return ", ".join(items[:LIST_LIMIT]) + more


class FolderDataset(Dataset):
    """Recordings in ``root/<label>/`` folders; speakers from a file-name regex or a CSV mapping.

    Parameters
    ----------
    root
        The folder holding one sub-folder per label.
    speaker_regex
        A regular expression with a named group ``speaker`` (and optionally ``group``), searched in file names.
    speakers
        A CSV file (relative to ``root`` or absolute) with the columns ``path``, ``speaker`` and optionally
        ``group``.
    classes
        ``None`` keeps every label folder; a list keeps those; a mapping ``{folder = class}`` renames and merges.
    missing
        ``"error"`` (default): an unreadable audio file raises :class:`DatasetError` naming it; ``"skip"``: leave
        it out with a warning that names it (see :attr:`skipped`).
    extensions
        The file name extensions taken as audio (default :data:`AUDIO_EXTENSIONS`).
    """

    name: ClassVar[str] = "folder"
    description: ClassVar[str] = ("Your own recordings in root/<label>/ folders (wav, flac, ogg, mp3, …); "
                                  "speakers from a file-name regex or a CSV")
    requires_root: ClassVar[bool] = True

    def __init__(
        self,
        root: str | Path | None = None,
        speaker_regex: str | None = None,
        speakers: str | None = None,
        classes: Sequence[str] | Mapping[str, str] | None = None,
        missing: str = "error",
        extensions: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root)
        if self.root is None:
            raise ConfigError("dataset 'folder' needs its files: pass --data-root DIR (one sub-folder per label)")
        if speaker_regex is not None and speakers is not None:
            raise ConfigError("dataset 'folder': give speaker_regex or speakers, not both")
        self.speaker_regex: re.Pattern[str] | None = None
        if speaker_regex is not None:
            try:
                self.speaker_regex = re.compile(str(speaker_regex))
            except re.error as exc:
                raise ConfigError(f"option speaker_regex={speaker_regex!r} is not a regular expression: {exc}") \
                    from None
            if "speaker" not in self.speaker_regex.groupindex:
                raise ConfigError(f"option speaker_regex={speaker_regex!r} needs a named group 'speaker', "
                                  "e.g. '^(?P<speaker>[^_]+)_'")
        self.speakers_file: Path | None = None
        if speakers is not None:
            path = Path(str(speakers))
            self.speakers_file = path if path.is_absolute() else self.root / path
        self.class_map = class_mapping(classes)
        self.missing = validate_missing_policy(missing)
        exts = AUDIO_EXTENSIONS if extensions is None else extensions
        if isinstance(exts, str) or not all(isinstance(e, str) and e for e in exts):
            raise ConfigError(f"option extensions={extensions!r}: expected a list like ['.wav', '.flac']")
        self.extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in exts}
        if not self.root.is_dir():
            raise DatasetError(f"dataset 'folder': {self.root} is not a folder" if self.root.exists()
                               else f"dataset 'folder': {self.root} does not exist")
        #: files left out with ``missing="skip"``: path → reason
        self.skipped: dict[str, str] = {}

    # -- loading -----------------------------------------------------------------------------------------------
    def _audio_files(self, folder: Path, other: dict[str, str]) -> list[Path]:
        """The audio files under a label folder; any other file goes into ``other`` (path → reason), so that
        a file the user meant as audio (``.m4a``, say) is named rather than silently not used."""
        files = []
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            # a dangling link is kept here, so the audio check names it instead of it vanishing unseen
            if any(part.startswith(".") for part in rel.parts) or not (path.is_file() or path.is_symlink()):
                continue
            if path.suffix.lower() in self.extensions:
                files.append(path)
            else:
                other[str(path)] = (f"not read: {path.suffix or 'no extension'} is not one of the audio extensions "
                                    f"(option extensions)")
        return files

    def load(self) -> list[Utterance]:
        root = self.root
        assert root is not None
        label_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in self.extensions]
        if loose:
            logger.warning("dataset 'folder': %d audio file(s) directly in %s are ignored (put them in a label "
                           "folder): %s", len(loose), root, _listing(sorted(loose)))
        if not label_dirs:
            raise DatasetError(f"dataset 'folder': no label folders in {root}; expected {root}/<label>/*.wav")
        if self.class_map is not None:
            absent = sorted(set(self.class_map) - {p.name for p in label_dirs})
            if absent:
                raise DatasetError(f"dataset 'folder': option classes names folder(s) {', '.join(absent)} that "
                                   f"{root} lacks; its label folders: {', '.join(p.name for p in label_dirs)}")
            label_dirs = [p for p in label_dirs if p.name in self.class_map]

        files: list[tuple[str, Path]] = []
        other: dict[str, str] = {}
        for folder in label_dirs:
            found = self._audio_files(folder, other)
            if not found:
                logger.warning("dataset 'folder': label folder %s holds no audio files (%s)", folder,
                               " ".join(sorted(self.extensions)))
            files += [(folder.name, f) for f in found]
        if not files:
            raise DatasetError(f"dataset 'folder': no audio files ({' '.join(sorted(self.extensions))}) in the "
                               f"label folders of {root}")

        who = self._speakers([f for _, f in files])
        bad = check_audio_files(f for _, f in files)
        handle_bad_audio(bad, self.missing, dataset=self.name, log=logger)
        if other:
            logger.warning("dataset 'folder': %d file(s) in label folders are not audio by their extension and are "
                           "not used: %s", len(other), _listing(sorted(Path(p).name for p in other)))
        self.skipped = {**other, **{str(p): why for p, why in bad.items()}}
        utterances = []
        for label, path in files:
            if path in bad:
                continue
            rel = path.relative_to(root).as_posix()
            speaker, group = who[path]
            utterances.append(Utterance(
                id=rel, path=path, label=self.class_map[label] if self.class_map else label,
                speaker=speaker, group=group or speaker, meta={"file": rel, "folder": label},
            ))
        logger.info("dataset 'folder': %d utterances in %d label folder(s) of %s", len(utterances),
                    len(label_dirs), root)
        return utterances

    def _speakers(self, files: list[Path]) -> dict[Path, tuple[str, str | None]]:
        """File → (speaker, group or None)."""
        if self.speaker_regex is not None:
            return self._speakers_from_regex(files)
        if self.speakers_file is not None:
            return self._speakers_from_csv(files)
        return {f: (UNKNOWN_SPEAKER, None) for f in files}

    def _speakers_from_regex(self, files: list[Path]) -> dict[Path, tuple[str, str | None]]:
        pattern = self.speaker_regex
        assert pattern is not None and self.root is not None
        result: dict[Path, tuple[str, str | None]] = {}
        unmatched: list[str] = []
        for f in files:
            m = pattern.search(f.name)
            if m is None or not m.group("speaker"):
                unmatched.append(f.relative_to(self.root).as_posix())
                continue
            group = m.groupdict().get("group") or None
            result[f] = (m.group("speaker"), group)
        if unmatched:
            raise DatasetError(f"dataset 'folder': speaker_regex {pattern.pattern!r} finds no speaker in "
                               f"{len(unmatched)} file name(s): {_listing(unmatched)}")
        return result

    def _speakers_from_csv(self, files: list[Path]) -> dict[Path, tuple[str, str | None]]:
        table = self.speakers_file
        assert table is not None and self.root is not None
        errors: list[tuple[int, str]] = []
        rows = read_table(table, required=("path", "speaker"), optional=("group",), errors=errors)
        by_rel = {f.relative_to(self.root).as_posix(): f for f in files}
        by_name: dict[str, list[Path]] = {}
        for f in files:
            by_name.setdefault(f.name, []).append(f)
        result: dict[Path, tuple[str, str | None]] = {}
        first_line: dict[Path, int] = {}
        unused: list[str] = []
        for lineno, row in rows:
            key, speaker = row["path"].replace("\\", "/").removeprefix("./"), row["speaker"]
            if not key or not speaker:
                errors.append((lineno, f"empty {'path' if not key else 'speaker'}"))
                continue
            if key in by_rel:
                target = by_rel[key]
            elif "/" not in key and len(by_name.get(key, [])) == 1:
                target = by_name[key][0]
            elif "/" not in key and key in by_name:
                errors.append((lineno, f"file name {key} is in several folders "
                                       f"({', '.join(p.relative_to(self.root).as_posix() for p in by_name[key])}); "
                                       "give the path relative to the root"))
                continue
            else:
                unused.append(key)
                continue
            if target in first_line:
                errors.append((lineno, f"{key} is mapped again (first at line {first_line[target]})"))
                continue
            first_line[target] = lineno
            result[target] = (speaker, row.get("group") or None)
        raise_row_errors(table, errors)
        if unused:
            logger.warning("dataset 'folder': %d row(s) of %s name no audio file under %s: %s", len(unused), table,
                           self.root, _listing(unused))
        unmapped = [f.relative_to(self.root).as_posix() for f in files if f not in result]
        if unmapped:
            raise DatasetError(f"dataset 'folder': {table} gives no speaker for {len(unmapped)} file(s): "
                               f"{_listing(unmapped)}")
        return result


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(FolderDataset)

