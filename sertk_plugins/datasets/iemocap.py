"""IEMOCAP (USC SAIL): five sessions of dyadic dialogs, ten actors, categorical and dimensional labels.

The corpus is licensed; bring your own copy. ``root`` is the release folder as USC ships it (or the folder that
holds it)::

    IEMOCAP_full_release/
    ├── Session1/
    │   ├── dialog/
    │   │   └── EmoEvaluation/
    │   │       ├── Ses01F_impro01.txt          labels: only these top-level *.txt files are read
    │   │       ├── Ses01F_script01_1.txt
    │   │       ├── …
    │   │       ├── Attribute/                  skipped
    │   │       ├── Categorical/                skipped
    │   │       └── Self-evaluation/            skipped
    │   └── sentences/
    │       └── wav/
    │           ├── Ses01F_impro01/
    │           │   ├── Ses01F_impro01_F000.wav   16 kHz, 16-bit, mono
    │           │   ├── Ses01F_impro01_M000.wav
    │           │   └── …                         (.pk and macOS ._* files are ignored)
    │           └── …
    ├── Session2/ … Session5/

A label file holds one block per utterance; its summary line (the only line that starts with ``[``) reads::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]

Speakers: each session has one female and one male actor. The speaker is the session plus the gender letter of
the utterance's *suffix* (``…_F000`` female, ``…_M012`` male), not the letter of the dialog prefix: in
``Ses05M_script01_3_F000`` the female actor of session 5 speaks. Speaker ids read ``Ses01_F`` … ``Ses05_M``;
the group (the fold of leave-one-session-out) is the session, ``Session1`` … ``Session5``.

Classes: by default the 4-class set of the literature (``exc`` merged into ``hap``; ``ang hap neu sad`` kept;
the rest dropped). On the full release (the folder is named ``IEMOCAP_full_release``, or ``full_release=True``)
the per-session 4-class counts of the label files are checked against the published table
(:data:`FULL_RELEASE_4CLASS`, 5531 utterances) and every difference is named.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import sertk
from sertk import Dataset, DatasetError, Utterance
from sertk.datasummary import check_audio_files, handle_bad_audio, validate_missing_policy
from sertk.errors import ConfigError
from sertk_plugins.datasets.filecorpus import corpus_classes, flag

logger = logging.getLogger(__name__)

__all__ = ["IEMOCAP", "LABELS", "CLASS_SETS", "FULL_RELEASE_4CLASS", "check_full_release", "speaker_of"]

#: every categorical label of the release (``xxx``: the annotators did not agree)
LABELS: tuple[str, ...] = ("neu", "hap", "ang", "sad", "exc", "fru", "fea", "sur", "dis", "oth", "xxx")

#: named class sets: original label → class; labels not in the mapping are left out
CLASS_SETS: dict[str, dict[str, str]] = {
    "4class": {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"},
    "4class-noexc": {"ang": "ang", "hap": "hap", "neu": "neu", "sad": "sad"},
    "all": {label: label for label in LABELS},
}

#: the published 4-class counts (``exc`` merged into ``hap``) per session of the full release
FULL_RELEASE_4CLASS: dict[int, dict[str, int]] = {
    1: {"ang": 229, "hap": 278, "neu": 384, "sad": 194},
    2: {"ang": 137, "hap": 327, "neu": 362, "sad": 197},
    3: {"ang": 240, "hap": 286, "neu": 320, "sad": 305},
    4: {"ang": 327, "hap": 303, "neu": 258, "sad": 143},
    5: {"ang": 170, "hap": 442, "neu": 384, "sad": 245},
}
SESSIONS: tuple[int, ...] = (1, 2, 3, 4, 5)
FULL_RELEASE_DIRNAME = "IEMOCAP_full_release"

_SUMMARY_RE = re.compile(
    r"^\[\s*(?P<start>[0-9.eE+-]+)\s*-\s*(?P<end>[0-9.eE+-]+)\s*\]\s+(?P<id>\S+)\s+(?P<label>\S+)\s+"
    r"\[(?P<vad>[^\]]*)\]\s*$"
)
_ID_RE = re.compile(r"^Ses(?P<session>\d{2})[FM]_(?P<kind>impro|script)\S*_(?P<gender>[FM])\d{3}$")


def speaker_of(utterance_id: str) -> str:
    """``"Ses05M_script01_3_F000"`` → ``"Ses05_F"``: the session and the gender letter of the suffix."""
    match = _ID_RE.match(utterance_id)
    if match is None:
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    return f"Ses{match['session']}_{match['gender']}"


def check_full_release(
    counts: Mapping[int, Mapping[str, int]], sessions: Sequence[int] = SESSIONS
) -> list[str]:
    """Compare 4-class counts per session with the published table; one line per difference, ``[]`` if none.

    Parameters
    ----------
    counts
        session number → 4-class label (``ang hap neu sad``, ``hap`` including ``exc``) → utterances in the label
        files. A session absent from ``counts`` (or with no utterances) is reported as missing.
    sessions
        The sessions to check (all five by default).
    """
    problems: list[str] = []
    found_total = expected_total = 0
    for session in sessions:
        expected = FULL_RELEASE_4CLASS[session]
        exp_n = sum(expected.values())
        expected_total += exp_n
        got = {k: v for k, v in (counts.get(session) or {}).items() if v}
        got_n = sum(got.values())
        found_total += got_n
        if got_n == 0:
            table = ", ".join(f"{k} {v}" for k, v in expected.items())
            problems.append(f"Session{session} is missing (expected {exp_n} utterances: {table})")
            continue
        diffs = [f"{k} {got.get(k, 0)} (expected {v})" for k, v in expected.items() if got.get(k, 0) != v]
        diffs += [f"{k} {n} (expected none)" for k, n in sorted(got.items()) if k not in expected]
        if diffs:
            problems.append(f"Session{session}: {', '.join(diffs)}; {got_n} in all (expected {exp_n})")
    if problems:
        problems.append(f"4-class total {found_total} (expected {expected_total})")
    return problems


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One summary line of a label file."""

    id: str
    label: str
    start: float
    end: float
    vad: tuple[float, float, float]
    session: int
    gender: str
    improvised: bool
    source: str  # "file:line"


def _parse_label_file(path: Path, session: int) -> list[_Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read IEMOCAP label file {path}: {exc}") from exc
    entries: list[_Entry] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("["):
            continue
        where = f"{path}:{lineno}"
        m = _SUMMARY_RE.match(line)
        if m is None:
            raise DatasetError(f"{where}: malformed summary line {line!r}; expected "
                               "'[START - END]<TAB>UTTERANCE<TAB>LABEL<TAB>[V, A, D]'")
        uid, label = m["id"], m["label"]
        idm = _ID_RE.match(uid)
        if idm is None:
            raise DatasetError(f"{where}: {uid!r} is not an IEMOCAP utterance id (like Ses01F_impro01_F000)")
        if int(idm["session"]) != session:
            raise DatasetError(f"{where}: utterance {uid} belongs to session {int(idm['session'])}, "
                               f"but its label file is in Session{session}")
        if label not in LABELS:
            raise DatasetError(f"{where}: unknown label {label!r} for {uid}; expected one of {' '.join(LABELS)}")
        try:
            start, end = float(m["start"]), float(m["end"])
            vad = tuple(float(v) for v in m["vad"].split(","))
        except ValueError as exc:
            raise DatasetError(f"{where}: bad number in {line!r}: {exc}") from None
        if len(vad) != 3:
            raise DatasetError(f"{where}: expected three values [V, A, D], got {len(vad)} in {line!r}")
        entries.append(_Entry(uid, label, start, end, vad, session, idm["gender"],  # type: ignore[arg-type]
                              idm["kind"] == "impro", where))
    return entries


def _session_numbers(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    numbers = []
    for item in items:
        text = str(item).strip()
        text = text[len("session"):] if text.lower().startswith("session") else text
        if isinstance(item, bool) or not text.isdigit() or int(text) not in SESSIONS:
            raise ConfigError(f"option sessions: {item!r} is not a session; use numbers 1 to 5 "
                              "(e.g. sessions=[1, 2]) or names like 'Session1'")
        numbers.append(int(text))
    if not numbers:
        raise ConfigError("option sessions is empty; leave it out to load all sessions")
    return tuple(sorted(set(numbers)))


class IEMOCAP(Dataset):
    """IEMOCAP full release: 10 speakers, sessions as folds, 4-class set (exc merged into hap) by default.

    Parameters
    ----------
    root
        ``IEMOCAP_full_release`` (or the folder holding it).
    classes
        ``"4class"`` (default: ``ang hap neu sad``, ``exc`` counted as ``hap``), ``"4class-noexc"`` (``exc``
        dropped), ``"all"`` (every label as annotated, ``oth`` and ``xxx`` included), a list of labels to keep
        as they are, or a mapping ``{label = class}``; unmapped labels are left out.
    sessions
        Session numbers to load (``[1, 2]``); all found by default.
    improvised_only, scripted_only
        Keep only the improvised or only the scripted dialogs.
    missing
        ``"error"`` (default): a wav listed in the label files that is missing or unreadable raises a
        :class:`DatasetError` naming it; ``"skip"``: leave such utterances out with a warning that names them
        (they are in :attr:`skipped`).
    full_release
        Check the published per-session 4-class counts; ``None`` (default) checks when the folder is named
        ``IEMOCAP_full_release``. Set ``false`` to load a partial copy on purpose.
    """

    name: ClassVar[str] = "iemocap"
    description: ClassVar[str] = ("IEMOCAP release (bring your own copy): 10 speakers, sessions as folds, "
                                  "4-class set with exc merged into hap by default")
    requires_root: ClassVar[bool] = True

    def __init__(
        self,
        root: str | Path | None = None,
        classes: str | Sequence[str] | Mapping[str, str] = "4class",
        sessions: Sequence[int | str] | int | str | None = None,
        improvised_only: bool = False,
        scripted_only: bool = False,
        missing: str = "error",
        full_release: bool | None = None,
    ) -> None:
        super().__init__(root)
        self.class_map = corpus_classes(classes, corpus="IEMOCAP", labels=LABELS, class_sets=CLASS_SETS)
        self.sessions = _session_numbers(sessions)
        self.improvised_only = flag("improvised_only", improvised_only)
        self.scripted_only = flag("scripted_only", scripted_only)
        if self.improvised_only and self.scripted_only:
            raise ConfigError("options improvised_only and scripted_only exclude each other; set at most one")
        self.missing = validate_missing_policy(missing)
        if full_release is not None:
            flag("full_release", full_release)
        if self.root is None:
            raise ConfigError("dataset 'iemocap' needs its files: pass root (--data-root DIR), the "
                              f"{FULL_RELEASE_DIRNAME} folder")
        self.corpus_dir = _find_corpus_dir(self.root)
        self.full_release = (self.corpus_dir.name.lower() == FULL_RELEASE_DIRNAME.lower()
                             if full_release is None else full_release)
        #: files left out with ``missing="skip"``: path → reason
        self.skipped: dict[str, str] = {}

    # -- loading -----------------------------------------------------------------------------------------------
    def load(self) -> list[Utterance]:
        found = [n for n in SESSIONS if (self.corpus_dir / f"Session{n}").is_dir()]
        wanted = self.sessions or tuple(found)
        absent = [n for n in wanted if n not in found]
        if absent:
            raise DatasetError(f"IEMOCAP at {self.corpus_dir}: no folder {', '.join(f'Session{n}' for n in absent)} "
                               f"(found: {', '.join(f'Session{n}' for n in found) or 'none'})")

        entries: list[_Entry] = []
        for n in (n for n in wanted if n in found):
            entries += self._read_session(n)
        seen: dict[str, str] = {}
        for e in entries:
            if e.id in seen:
                raise DatasetError(f"{e.source}: utterance {e.id} is labelled twice (first at {seen[e.id]})")
            seen[e.id] = e.source

        if self.full_release:
            four = CLASS_SETS["4class"]
            counts: dict[int, Counter[str]] = {n: Counter() for n in wanted}
            for e in entries:
                if e.label in four:
                    counts[e.session][four[e.label]] += 1
            check = SESSIONS if self.sessions is None else self.sessions
            problems = check_full_release(counts, check)
            if problems:
                raise DatasetError(
                    f"IEMOCAP at {self.corpus_dir} does not match the full release (4-class counts of the label "
                    f"files, exc counted as hap): {'; '.join(problems)}. Restore the missing parts, or pass "
                    f"full_release=false (`sertk run -o dataset.full_release=false`, "
                    f"`sertk data summary -o full_release=false`) to load a partial copy on purpose"
                )

        kept = [e for e in entries if e.label in self.class_map
                and not (self.improvised_only and not e.improvised)
                and not (self.scripted_only and e.improvised)]
        paths = {e.id: self._wav_path(e) for e in kept}
        bad = check_audio_files(paths[e.id] for e in kept)
        handle_bad_audio(bad, self.missing, dataset=self.name, log=logger)
        self.skipped = {str(p): reason for p, reason in bad.items()}

        utterances = [
            Utterance(
                id=e.id,
                path=paths[e.id],
                label=self.class_map[e.label],
                speaker=f"Ses{e.session:02d}_{e.gender}",
                group=f"Session{e.session}",
                meta={
                    "dialog": e.id[:-5],
                    "session": e.session,
                    "gender": e.gender,
                    "improvised": e.improvised,
                    "start": e.start,
                    "end": e.end,
                    "valence": e.vad[0],
                    "arousal": e.vad[1],
                    "dominance": e.vad[2],
                    "original_label": e.label,
                },
            )
            for e in kept
            if paths[e.id] not in bad
        ]
        logger.info("IEMOCAP: %d utterances from %s (%s)", len(utterances),
                    ", ".join(f"Session{n}" for n in wanted if n in found),
                    ", ".join(f"{k} {v}" for k, v in sorted(Counter(u.label for u in utterances).items())))
        return utterances

    def _read_session(self, n: int) -> list[_Entry]:
        label_dir = self.corpus_dir / f"Session{n}" / "dialog" / "EmoEvaluation"
        files = sorted(p for p in label_dir.glob("*.txt") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DatasetError(f"IEMOCAP Session{n}: no label files {label_dir}/*.txt")
        entries: list[_Entry] = []
        for path in files:
            entries += _parse_label_file(path, n)
        return entries

    def _wav_path(self, e: _Entry) -> Path:
        return self.corpus_dir / f"Session{e.session}" / "sentences" / "wav" / e.id[:-5] / f"{e.id}.wav"


def _find_corpus_dir(root: Path) -> Path:
    if not root.exists():
        raise DatasetError(f"IEMOCAP root {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"IEMOCAP root {root} is not a folder; pass the {FULL_RELEASE_DIRNAME} folder")
    def has_sessions(folder: Path) -> bool:
        return any((folder / f"Session{n}").is_dir() for n in SESSIONS)

    if has_sessions(root):
        return root
    # the folder that holds the release (IEMOCAP_full_release, or a single copy under another name)
    children = sorted(p for p in root.iterdir() if p.is_dir() and has_sessions(p))
    named = [p for p in children if p.name.lower() == FULL_RELEASE_DIRNAME.lower()]
    if named or len(children) == 1:
        return (named or children)[0]
    if children:
        raise DatasetError(f"{root} holds several IEMOCAP copies ({', '.join(p.name for p in children)}); "
                           "pass the one to use")
    raise DatasetError(f"no IEMOCAP sessions under {root}: expected folders Session1 … Session5 (each with "
                       f"dialog/EmoEvaluation/*.txt and sentences/wav/), as in {FULL_RELEASE_DIRNAME}")


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(IEMOCAP)
