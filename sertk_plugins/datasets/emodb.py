"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., Interspeech 2005): ten actors, seven emotions.

Ten German actors speak ten everyday sentences in seven emotions; the release keeps the 535 recordings whose emotion
at least 80 % of the listeners recognised. Download it free from the authors (http://emodb.bilderbar.info/, mirrored
at http://database.syntheticspeech.de/). ``root`` is the unpacked download, the folder that holds it, or its ``wav/``
folder::

    emodb/
    ├── wav/
    │   ├── 03a01Fa.wav       speaker 03, text a01, emotion F (Freude: happiness), version a
    │   ├── 03a01Nc.wav
    │   └── …                 535 files (16 kHz mono)
    └── …                     the label and perception-test files of the download: not read

A file name encodes everything: two digits of speaker, three characters of text, one letter of emotion (the
initial of the German word), one letter of version (a second or third take of the same sentence)::

    03 a01 F a        speakers 03 08 09 10 11 12 13 14 15 16
                      texts    a01 a02 a04 a05 a07 b01 b02 b03 b09 b10
                      emotions W Ärger → anger      L Langeweile → boredom   E Ekel → disgust
                               A Angst → fear       F Freude → happiness     T Trauer → sadness
                               N neutral → neutral

Speakers (sex, age at recording): 03 m 31, 08 f 34, 09 f 21, 10 m 32, 11 m 26, 12 m 30, 13 f 32, 14 f 35,
15 m 25, 16 f 31. The speaker id is the two digits (``"03"``); the group is the speaker, so leave-one-group-out
(``--protocol loso``) is leave-one-speaker-out, the usual protocol for EmoDB (``loso-speaker`` is the same split).

Where the facts come from:

- naming scheme, emotion letters, text codes, speakers with sex and age: the corpus documentation
  (http://emodb.bilderbar.info/docu/, "Information about the speakers"), as quoted word for word on
  e-com-net.com/article/1275696281754288128.htm; the same ten letters and glosses in audEERING's loader and the
  example plugin ``examples/sertk-example-dataset``.
- 535 files: the Hugging Face mirror renumics/emodb (535 examples) and a full copy on GitHub
  (sylaschacko/voice-emotion-analysis, 535 files in ``wav/``); the 80 % criterion: database.syntheticspeech.de.
  audEERING's emodb 2.0 (github.com/audeering/emodb, 2.0.0/README.md) adds the 281 utterances fewer listeners
  recognised, 816 in all; that copy is not the 535-file release and fails the full-release check.
- per-emotion counts, W 127, L 81, E 46, A 69, F 71, T 62, N 79 (:data:`COMMONLY_CITED_COUNTS`): widely quoted and
  adding up to 535, but we found no primary source, so they are reported next to a failed check and warned about,
  never enforced.
- licence: the authors' site offers the download free and states no licence; audEERING republishes the corpus
  under CC0 1.0 (audeering/emodb README). Check the terms of the copy you use.

Names that do not follow the scheme — or name a speaker or text code the documentation does not list — are left
out with one warning (see :mod:`sertk_plugins.datasets.filecorpus`); hidden files such as macOS ``._*`` are
ignored. On the full release (the copy holds at least 90 % of 535 files, or ``full_release=True``) the total and
the speaker set are checked and every difference is named.
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
from sertk import Dataset, Utterance
from sertk.datasummary import (
    check_audio_files,
    handle_bad_audio,
    validate_missing_policy,
)
from sertk.errors import ConfigError, DatasetError
from sertk_plugins.datasets.filecorpus import (
    corpus_classes,
    count_differences,
    find_corpus_dir,
    full_release_error,
    optional_flag,
    scan_names,
    wants_full_check,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CLASS_SETS",
    "COMMONLY_CITED_COUNTS",
    "EMOTIONS",
    "FULL_RELEASE_FILES",
    "LABELS",
    "SPEAKERS",
    "TEXTS",
    "EmoDB",
    "check_full_release",
    "parse_name",
]

#: emotion letter → (German word, label)
EMOTIONS: dict[str, tuple[str, str]] = {
    "W": ("Ärger", "anger"),
    "L": ("Langeweile", "boredom"),
    "E": ("Ekel", "disgust"),
    "A": ("Angst", "fear"),
    "F": ("Freude", "happiness"),
    "T": ("Trauer", "sadness"),
    "N": ("Neutral", "neutral"),
}
#: the labels, in the order of the documentation's emotion table
LABELS: tuple[str, ...] = tuple(label for _, label in EMOTIONS.values())
#: named class sets: label → class; labels not in the mapping are left out
CLASS_SETS: dict[str, dict[str, str]] = {"all": {label: label for label in LABELS}}
#: speaker → (sex, age at recording), from the corpus documentation
SPEAKERS: dict[str, tuple[str, int]] = {
    "03": ("M", 31), "08": ("F", 34), "09": ("F", 21), "10": ("M", 32), "11": ("M", 26),
    "12": ("M", 30), "13": ("F", 32), "14": ("F", 35), "15": ("M", 25), "16": ("F", 31),
}
#: the ten text codes (a: short sentences, b: longer ones)
TEXTS: tuple[str, ...] = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
#: files in the release (the recordings recognised by at least 80 % of the listeners)
FULL_RELEASE_FILES = 535
#: files in audEERING's extended republication (emodb 2.0), which adds the other 281 recordings
EXTENDED_RELEASE_FILES = 816
#: per-label counts quoted throughout the literature; no primary source found, so never enforced
COMMONLY_CITED_COUNTS: dict[str, int] = {"anger": 127, "boredom": 81, "disgust": 46, "fear": 69, "happiness": 71,
                                         "sadness": 62, "neutral": 79}

_NAME_RE = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[A-Z])(?P<version>[a-z])\.(?i:wav)$")
_LAYOUT = "the unpacked EmoDB download: a folder wav/ with files like 03a01Fa.wav"

#: the authors' download (the URL audEERING's audformat EmoDB example fetches); no size or digest is published, so
#: none is pinned: the extracted copy is checked as the 535-file release instead
DOWNLOAD_URL = "http://emodb.bilderbar.info/download/download.zip"
#: the folder under ``dest`` that :meth:`EmoDB.download` extracts to (the zip holds wav/, lablaut/, labsilb/, silb/,
#: erkennung.txt and erklaerung.txt at its top level)
DOWNLOAD_FOLDER = "emodb"


@dataclasses.dataclass(frozen=True)
class _File:
    """One parsed file name."""

    path: Path
    speaker: str
    text: str
    emotion: str  # the letter
    version: str

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def label(self) -> str:
        return EMOTIONS[self.emotion][1]


def parse_name(path: Path) -> _File | str:
    """The fields of an EmoDB file name, or why it is not one (a string)."""
    m = _NAME_RE.match(path.name)
    if m is None:
        return "not of the form SSTTTEV.wav (speaker, text, emotion letter, version)"
    if m["emotion"] not in EMOTIONS:
        return f"emotion letter {m['emotion']!r} is none of {' '.join(EMOTIONS)}"
    if m["speaker"] not in SPEAKERS:
        return f"speaker {m['speaker']} is none of the ten ({' '.join(SPEAKERS)})"
    if m["text"] not in TEXTS:
        return f"text {m['text']} is none of the ten ({' '.join(TEXTS)})"
    return _File(path, m["speaker"], m["text"], m["emotion"], m["version"])


def check_full_release(speakers: Mapping[str, int]) -> list[str]:
    """Compare the files per speaker with the release; one line per difference, ``[]`` if none.

    Only what is documented is checked: the total (:data:`FULL_RELEASE_FILES`) and that each of the ten speakers
    is there. Per-emotion counts are not published by the authors (see :data:`COMMONLY_CITED_COUNTS`).
    """
    problems = []
    absent = [s for s in SPEAKERS if not speakers.get(s)]
    if absent:
        problems.append(f"no files of speaker(s) {', '.join(absent)}")
    total = sum(speakers.values())
    if total != FULL_RELEASE_FILES:
        note = (f": {EXTENDED_RELEASE_FILES} is audEERING's extended republication, which adds the 281 recordings "
                "fewer than 80 % of the listeners recognised" if total == EXTENDED_RELEASE_FILES else "")
        problems.append(f"{total} files in wav/ (expected {FULL_RELEASE_FILES}){note}")
    return problems


class EmoDB(Dataset):
    """EmoDB: 10 speakers (each its own group), 7 emotions, 535 files; labels and speakers from the file names.

    Parameters
    ----------
    root
        The unpacked download (holding ``wav/``), the folder that holds it, or ``wav/`` itself.
    classes
        ``"all"`` (default: ``anger boredom disgust fear happiness sadness neutral``), a list of labels to keep, or
        a mapping ``{label = class}`` (unlisted labels are left out).
    missing
        ``"error"`` (default): a file that is empty or cannot be decoded raises a :class:`DatasetError` naming it;
        ``"skip"``: leave such files out with a warning that names them (they are in :attr:`skipped`).
    full_release
        Check that the copy is the 535-file release with all ten speakers; ``None`` (default) checks when the copy
        holds at least 90 % of 535 files. ``false`` loads anything on purpose.
    """

    name: ClassVar[str] = "emodb"
    description: ClassVar[str] = ("Berlin EmoDB (free download): 10 German actors, 7 emotions, 535 files; "
                                  "speaker = group (leave-one-speaker-out)")
    requires_root: ClassVar[bool] = True

    def __init__(
        self,
        root: str | Path | None = None,
        classes: str | Sequence[str] | Mapping[str, str] = "all",
        missing: str = "error",
        full_release: bool | None = None,
    ) -> None:
        super().__init__(root)
        self.class_map = corpus_classes(classes, corpus="EmoDB", labels=LABELS, class_sets=CLASS_SETS)
        self.missing = validate_missing_policy(missing)
        self.full_release = optional_flag("full_release", full_release)
        if self.root is None:
            raise ConfigError("dataset 'emodb' needs its files: pass root (--data-root DIR), the unpacked EmoDB "
                              "download that holds wav/")
        self.corpus_dir = find_corpus_dir(self.root, corpus="EmoDB", marker="wav", layout=_LAYOUT)
        #: files left out: path → reason (names that do not parse; with ``missing="skip"``, unusable audio)
        self.skipped: dict[str, str] = {}

    @classmethod
    def download(cls, dest: str | Path) -> Path:
        """Download the authors' ``download.zip`` (:data:`DOWNLOAD_URL`) into ``dest`` and extract it to
        ``dest/emodb``; returns that folder (the ``--data-root``).

        Resumable (an interrupted transfer continues from ``dest/download.zip.part``) and idempotent (a complete
        ``dest/emodb`` is left as it is). Nothing is pinned (the authors publish no size or digest): the extracted
        folder must instead load as EmoDB with the default options, which checks the 535-file release and its ten
        speakers, before it is renamed into place. The zip is deleted afterwards.
        """
        from sertk.download import download_corpus

        def check(folder: Path) -> str:
            if not (folder / "wav").is_dir():
                raise DatasetError(f"{DOWNLOAD_URL} did not unpack to {_LAYOUT}; the download is not EmoDB")
            n = sum(1 for _ in cls(folder).utterances())
            return f"{n} utterances"

        return download_corpus("EmoDB", DOWNLOAD_URL, dest, archive="download.zip", folder=DOWNLOAD_FOLDER,
                               check=check)

    def load(self) -> list[Utterance]:
        wav_dir = self.corpus_dir / "wav"
        files: list[_File]
        files, unparsed = scan_names(wav_dir, parse_name, corpus="EmoDB", example="03a01Fa.wav", log=logger)

        if wants_full_check(self.full_release, n_found=len(files), n_expected=FULL_RELEASE_FILES,
                            named_like_release=False):
            problems = check_full_release(Counter(f.speaker for f in files))
            emotion_diffs = count_differences(Counter(f.label for f in files), COMMONLY_CITED_COUNTS)
            if problems:
                if emotion_diffs:
                    problems.append("per emotion, against the commonly cited (unverified) counts: "
                                    + ", ".join(emotion_diffs))
                raise full_release_error("EmoDB", self.corpus_dir, f"{FULL_RELEASE_FILES} files of 10 speakers",
                                         problems)
            if emotion_diffs:
                logger.warning("EmoDB at %s: per-emotion counts differ from the commonly cited ones, which we could "
                               "not verify (not an error): %s", self.corpus_dir, ", ".join(emotion_diffs))

        kept = sorted((f for f in files if f.label in self.class_map), key=lambda f: (f.speaker, f.id))
        bad = check_audio_files(f.path for f in kept)
        handle_bad_audio(bad, self.missing, dataset=self.name, log=logger)
        self.skipped = {**{str(p): why for p, why in unparsed.items()}, **{str(p): why for p, why in bad.items()}}

        utterances = [self._utterance(f) for f in kept if f.path not in bad]
        logger.info("EmoDB: %d utterances of %d speakers (%s)", len(utterances),
                    len({u.speaker for u in utterances}),
                    ", ".join(f"{k} {v}" for k, v in sorted(Counter(u.label for u in utterances).items())))
        return utterances

    def _utterance(self, f: _File) -> Utterance:
        sex, age = SPEAKERS[f.speaker]
        meta: dict[str, Any] = {
            "speaker": f.speaker,
            "gender": sex,
            "age": age,
            "text": f.text,
            "emotion_code": f.emotion,
            "emotion_de": EMOTIONS[f.emotion][0],
            "version": f.version,
            "original_label": f.label,
        }
        return Utterance(id=f.id, path=f.path, label=self.class_map[f.label], speaker=f.speaker, group=f.speaker,
                         meta=meta)


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(EmoDB)
