"""The ``demo`` dataset: a small synthetic corpus shipped inside sertk, so ``sertk run`` works with no download.

144 utterances of espeak-ng speech: 6 synthetic voices in 3 sessions (one male, one female voice each),
4 classes named like IEMOCAP's four-class set (``ang hap neu sad``) that differ only by the prosody given to the
synthesiser. It is a demo for checking that a pipeline runs, **not** an emotion benchmark. The corpus and its
README live in ``sertk/data/demo/``; ``scripts/make_demo_corpus.py`` rebuilds them.

``root`` is optional: ``None`` loads the packaged copy; a folder laid out like the script's output loads that
instead::

    <root>/
        manifest.csv          id,file,label,speaker,group,text   (file relative to <root>)
        s1m_ang_00.flac
        …

``group`` is the session (``s1`` … ``s3``), so leave-one-group-out is leave-one-session-out; ``speaker`` is
``<session><gender>`` (``s1m``, ``s1f``, …).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import sertk
from sertk import Dataset, DatasetError, Utterance
from sertk.errors import ConfigError

__all__ = ["DemoDataset", "packaged_corpus_dir", "MANIFEST", "COLUMNS"]

MANIFEST = "manifest.csv"
COLUMNS: tuple[str, ...] = ("id", "file", "label", "speaker", "group", "text")
_LIST_LIMIT = 10


def packaged_corpus_dir() -> Path:
    """The folder of the demo corpus installed with sertk."""
    resource = resources.files("sertk").joinpath("data", "demo")
    if not isinstance(resource, os.PathLike):
        raise DatasetError(f"the packaged demo corpus ({resource}) is not a folder on disk; "
                           "install sertk unzipped (pip install does)")
    return Path(os.fspath(resource))


def _names(option: str, value: Any) -> tuple[str, ...] | None:
    """A subset option: ``None``, a list of names, or one comma-separated string (as ``-o labels=ang,sad`` gives)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"option {option}={value!r}: expected a list of names or a comma-separated string")
    names = tuple(dict.fromkeys(i.strip() for i in items if i.strip()))
    if not names:
        raise ConfigError(f"option {option} is empty; leave it out to keep all")
    return names


class DemoDataset(Dataset):
    """Synthetic espeak-ng demo corpus shipped with sertk: 6 voices, 3 sessions, 4 classes.

    Parameters
    ----------
    root
        ``None`` (default) for the packaged corpus, or a folder with a ``manifest.csv`` laid out the same way.
    labels
        Keep only these classes (a list, or a comma-separated string such as ``"ang,sad"``).
    speakers
        Keep only these speakers (e.g. ``["s1m", "s1f"]``).
    """

    name: ClassVar[str] = "demo"
    description: ClassVar[str] = ("synthetic espeak-ng speech shipped with sertk (6 voices, 4 classes, 144 "
                                  "utterances): a demo, not an emotion benchmark")
    requires_root: ClassVar[bool] = False

    def __init__(
        self,
        root: str | Path | None = None,
        labels: Sequence[str] | str | None = None,
        speakers: Sequence[str] | str | None = None,
    ) -> None:
        super().__init__(root)
        self.labels = _names("labels", labels)
        self.speakers = _names("speakers", speakers)
        self.corpus_dir = self.root if self.root is not None else packaged_corpus_dir()

    def load(self) -> list[Utterance]:
        all_utts = _read_manifest(self.corpus_dir)
        for option, wanted, field in (("labels", self.labels, "label"), ("speakers", self.speakers, "speaker")):
            if wanted is None:
                continue
            known = sorted({getattr(u, field) for u in all_utts})
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise ConfigError(f"dataset 'demo': option {option}: unknown {', '.join(map(repr, unknown))}; "
                                  f"the corpus has {', '.join(known)}")
        utts = [u for u in all_utts
                if (self.labels is None or u.label in self.labels)
                and (self.speakers is None or u.speaker in self.speakers)]
        missing = [str(u.path) for u in utts if not u.path.is_file()]
        if missing:
            listing = ", ".join(missing[:_LIST_LIMIT])
            more = f" and {len(missing) - _LIST_LIMIT} more" if len(missing) > _LIST_LIMIT else ""
            raise DatasetError(f"demo corpus at {self.corpus_dir}: {len(missing)} audio file(s) listed in "
                               f"{MANIFEST} are missing: {listing}{more}; rebuild it with "
                               "scripts/make_demo_corpus.py (or reinstall sertk)")
        return utts


def _read_manifest(corpus_dir: Path) -> list[Utterance]:
    path = corpus_dir / MANIFEST
    if not corpus_dir.is_dir():
        raise DatasetError(f"demo corpus folder {corpus_dir} does not exist")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            absent = [c for c in COLUMNS if c not in header]
            if absent:
                raise DatasetError(f"{path}: missing column(s) {', '.join(absent)}; "
                                   f"expected a header {','.join(COLUMNS)}")
            rows = list(reader)
    except FileNotFoundError:
        raise DatasetError(f"demo corpus manifest {path} not found; rebuild the corpus with "
                           "scripts/make_demo_corpus.py (or reinstall sertk)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read demo corpus manifest {path}: {exc}") from exc

    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    for lineno, row in enumerate(rows, start=2):
        where = f"{path}:{lineno}"
        empty = [c for c in COLUMNS if c != "text" and not (row.get(c) or "").strip()]
        if empty:
            raise DatasetError(f"{where}: empty {', '.join(empty)}")
        uid = row["id"].strip()
        if uid in seen:
            raise DatasetError(f"{where}: id {uid!r} already used on line {seen[uid]}")
        seen[uid] = lineno
        utts.append(Utterance(
            id=uid,
            path=corpus_dir / row["file"].strip(),
            label=row["label"].strip(),
            speaker=row["speaker"].strip(),
            group=row["group"].strip(),
            meta={"text": (row.get("text") or "").strip()},
        ))
    if not utts:
        raise DatasetError(f"{path} lists no utterances")
    return utts


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(DemoDataset)
