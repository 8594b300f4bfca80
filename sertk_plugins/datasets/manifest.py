"""Dataset ``csv``: your own recordings listed in a manifest table.

``root`` is the manifest file, or the folder that holds it (``manifest.csv`` unless the ``manifest`` option names
another file)::

    my-corpus/
    ├── manifest.csv
    └── audio/
        ├── spk1_001.wav
        └── …

    manifest.csv:
        path,label,speaker,group
        audio/spk1_001.wav,angry,spk1,spk1
        audio/spk2_001.flac,happy,spk2,spk2
        …

Columns (header names are case-insensitive; the delimiter is ``,``, ``;`` or a tab, detected from the header):

- ``path`` (required): an audio file that :mod:`soundfile` reads; relative paths are relative to the manifest's
  folder.
- ``label`` (required): the emotion.
- ``speaker``: who speaks (``"unknown"`` when the column is absent; an empty cell is an error).
- ``group``: the fold key for leave-one-group-out protocols; the speaker when absent or empty.
- ``id``: a unique utterance id; the path as written when absent.
- any other column is carried in ``Utterance.meta``.

Bad rows are reported all at once as ``manifest.csv:LINE: what is wrong``.

This module also holds the table reader and the ``classes`` option that the ``folder`` dataset shares.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import sertk
from sertk import Dataset, DatasetError, Utterance
from sertk.datasummary import LIST_LIMIT, check_audio_files, handle_bad_audio, validate_missing_policy
from sertk.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["CsvDataset", "read_table", "class_mapping", "raise_row_errors", "UNKNOWN_SPEAKER"]

#: the speaker of every utterance when a dataset has no speaker information
UNKNOWN_SPEAKER = "unknown"


def read_table(path: Path, *, required: Sequence[str], optional: Sequence[str] = (),
               delimiter: str | None = None,
               errors: list[tuple[int, str]] | None = None) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV/TSV file with a header, as ``(line number, {lower-case column: stripped cell})``.

    Blank lines and lines starting with ``#`` are skipped. The delimiter (``,`` ``;`` or tab) is detected from the
    header unless given. A row with more cells than the header is left out and reported: appended to ``errors``
    as ``(line, message)`` when a list is given (so the caller can report it with its own findings), else raised.

    Raises
    ------
    DatasetError
        The file cannot be read, a required column is missing, or (without ``errors``) a row is too long.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"table {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read table {path}: {exc}") from exc
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), None)
    if header_line is None:
        raise DatasetError(f"{path} is empty; expected a header line with the columns {', '.join(required)}")
    if delimiter is None:
        counts = {d: header_line.count(d) for d in (",", "\t", ";")}
        delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    found: list[tuple[int, str]] = []
    for cells in reader:
        lineno = reader.line_num
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            lacking = [c for c in required if c not in header]
            if lacking:
                raise DatasetError(
                    f"{path}:{lineno}: missing column(s) {', '.join(lacking)}; the header has "
                    f"{', '.join(header)}; expected {', '.join(required)}"
                    + (f" and optionally {', '.join(optional)}" if optional else "")
                    + (f" (delimiter {delimiter!r})" if len(header) == 1 else "")
                )
            dups = sorted({c for c in header if header.count(c) > 1})
            if dups:
                raise DatasetError(f"{path}:{lineno}: column(s) {', '.join(dups)} appear more than once")
            continue
        if len(cells) > len(header):
            found.append((lineno, f"{len(cells)} cells but the header has {len(header)} columns "
                                  "(a value with the delimiter in it needs quotes)"))
            continue
        cells = cells + [""] * (len(header) - len(cells))
        rows.append((lineno, {h: c.strip() for h, c in zip(header, cells)}))
    if errors is None:
        raise_row_errors(path, found)
    else:
        errors += found
    return rows


def raise_row_errors(path: Path, errors: Sequence[tuple[int, str]]) -> None:
    """Raise one :class:`DatasetError` listing the bad rows (``file:line: what``, by line), if there are any."""
    if not errors:
        return
    items = [f"{path}:{lineno}: {what}" for lineno, what in sorted(errors)]
    more = f"; and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else ""
    raise DatasetError(f"{path}: {len(items)} bad row(s): {'; '.join(items[:LIST_LIMIT])}{more}")


def class_mapping(value: Any, option: str = "classes") -> dict[str, str] | None:
    """The ``classes`` option of ``folder`` and ``csv``: ``None`` keeps every label; a list keeps those labels;
    a mapping ``{label = class}`` renames (and merges) labels and leaves the others out."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        mapping = {str(k): str(v) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        mapping = {str(k): str(k) for k in value}
    else:
        raise ConfigError(f"option {option}={value!r}: expected a list of labels or a mapping {{label = class}}")
    if not mapping or not all(k and v for k, v in mapping.items()):
        raise ConfigError(f"option {option}={value!r}: needs at least one label, and no empty names")
    return mapping


class CsvDataset(Dataset):
    """Recordings listed in a CSV manifest (path, label, speaker, group); paths relative to the manifest.

    Parameters
    ----------
    root
        The manifest file, or the folder holding it.
    manifest
        The manifest's file name inside ``root`` (or a path of its own); default ``manifest.csv``.
    classes
        ``None`` keeps every label; a list keeps those; a mapping ``{label = class}`` renames and merges.
    missing
        ``"error"`` (default): a listed file that is missing or unreadable raises :class:`DatasetError` naming it
        with its line; ``"skip"``: leave it out with a warning that names it (see :attr:`skipped`).
    delimiter
        Force the delimiter (detected from the header by default).
    """

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "Your own recordings listed in a CSV manifest: path, label, speaker, group"
    requires_root: ClassVar[bool] = False  # root or an explicit manifest path

    def __init__(
        self,
        root: str | Path | None = None,
        manifest: str | None = None,
        classes: Sequence[str] | Mapping[str, str] | None = None,
        missing: str = "error",
        delimiter: str | None = None,
    ) -> None:
        super().__init__(root)
        self.class_map = class_mapping(classes)
        self.missing = validate_missing_policy(missing)
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            raise ConfigError(f"option delimiter={delimiter!r}: expected one character, e.g. ',' or '\\t'")
        self.delimiter = delimiter
        if self.root is None and manifest is None:
            raise ConfigError("dataset 'csv' needs a manifest: pass --data-root (the manifest, or its folder) "
                              "or -o manifest=FILE")
        if self.root is not None and self.root.is_file():
            if manifest is not None:
                raise ConfigError(f"dataset 'csv': root {self.root} is already a file; leave out the manifest "
                                  "option, or pass the folder as root")
            self.manifest = self.root
        elif self.root is not None:
            self.manifest = self.root / (manifest or "manifest.csv")
        else:
            self.manifest = Path(str(manifest))
        if not self.manifest.is_file():
            where = f" in {self.root}" if self.root is not None and self.root.is_dir() else ""
            raise DatasetError(f"manifest {self.manifest} not found{where}; a csv dataset needs a table with the "
                               "columns path, label[, speaker, group]")
        #: files left out with ``missing="skip"``: path → reason
        self.skipped: dict[str, str] = {}

    def load(self) -> list[Utterance]:
        table = self.manifest
        errors: list[tuple[int, str]] = []
        rows = read_table(table, required=("path", "label"), optional=("speaker", "group", "id"),
                          delimiter=self.delimiter, errors=errors)
        base = table.parent
        seen_path: dict[Path, int] = {}
        seen_id: dict[str, int] = {}
        records: list[tuple[int, dict[str, Any]]] = []
        for lineno, row in rows:
            path_text, label = row.get("path", ""), row.get("label", "")
            problems = []
            if not path_text:
                problems.append("empty path")
            if not label:
                problems.append("empty label")
            speaker = row["speaker"] if "speaker" in row else UNKNOWN_SPEAKER
            if not speaker:
                problems.append("empty speaker")
            uid = row.get("id") or path_text.replace("\\", "/")
            if problems:
                errors.append((lineno, ", ".join(problems)))
                continue
            path = Path(path_text)
            path = path if path.is_absolute() else base / path
            key = path.resolve()
            if key in seen_path:
                errors.append((lineno, f"file {path_text} is listed again (first at line {seen_path[key]})"))
                continue
            if uid in seen_id:
                errors.append((lineno, f"id {uid!r} is used again (first at line {seen_id[uid]})"))
                continue
            seen_path[key] = seen_id[uid] = lineno
            if self.class_map is not None and label not in self.class_map:
                continue
            extra = {k: v for k, v in row.items() if k not in ("path", "label", "speaker", "group", "id")}
            records.append((lineno, {
                "id": uid, "path": path, "label": self.class_map[label] if self.class_map else label,
                "speaker": speaker, "group": row.get("group") or speaker,
                "meta": {**extra, "original_label": label, "line": lineno},
            }))
        raise_row_errors(table, errors)
        if self.class_map is not None:
            unused = sorted(set(self.class_map) - {r["meta"]["original_label"] for _, r in records})
            if unused:
                logger.warning("dataset 'csv': no row has the label(s) %s named in the classes option",
                               ", ".join(unused))

        bad = check_audio_files(r["path"] for _, r in records)
        line_of = {r["path"]: lineno for lineno, r in records}
        handle_bad_audio({f"{table.name}:{line_of[p]}: {p}": why for p, why in bad.items()}, self.missing,
                         dataset=self.name, log=logger)
        self.skipped = {str(p): why for p, why in bad.items()}
        utterances = [Utterance(**r) for _, r in records if r["path"] not in bad]
        logger.info("dataset 'csv': %d utterances from %s", len(utterances), table)
        return utterances


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(CsvDataset)
