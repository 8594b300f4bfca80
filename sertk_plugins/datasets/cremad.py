"""CREMA-D (Cao et al., IEEE Trans. Affective Computing 2014): 7442 clips of 91 actors, six emotions.

The Crowd-sourced Emotional Multimodal Actors Dataset has 91 actors (48 male, 43 female, aged 20 to 74, of diverse
races and ethnicities) say twelve sentences in six emotions. Get it from the release repository,
https://github.com/CheyneyComputerScience/CREMA-D — with ``git lfs clone``: a zip of the repository holds git-lfs
pointers instead of audio, which this loader recognises and reports. Licence: Open Database License (ODbL 1.0),
contents under the Database Contents License (DbCL 1.0). ``root`` is the clone, the folder that holds it, or its
``AudioWAV/`` folder::

    CREMA-D/
    ├── AudioWAV/
    │   ├── 1001_DFA_ANG_XX.wav     actor 1001, sentence DFA, anger, level unspecified
    │   └── …                       7442 files
    ├── VideoDemographics.csv       optional: ActorID, Age, Sex, Race, Ethnicity → meta (gender, age, …)
    └── AudioMP3/, VideoFlash/, …   not read

A file name is ``ACTOR_SENTENCE_EMOTION_LEVEL.wav``::

    actor     1001 … 1091
    sentence  IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI   (texts in :data:`SENTENCES`)
    emotion   ANG anger, DIS disgust, FEA fear, HAP happy, NEU neutral, SAD sad
    level     LO low, MD medium, HI high, XX unspecified (only IEO was recorded at three levels)

The speaker is the actor number (``"1001"``) and the group is the speaker, so leave-one-group-out is
leave-one-speaker-out (91 folds); ``--protocol speaker-kfold`` gives the usual k folds of whole speakers.

Where the facts come from: 7442 clips, 91 actors (48 m, 43 f), twelve sentences, six emotions, four levels and
the licence — the repository's README and LICENSE.txt and the paper's abstract; the naming scheme and sentence
codes — the file names in the repository (``SentenceFilenames.csv``, 7442 rows, and ``AudioWAV/``); the
sentence texts — the repository's README, as its transcripts confirm. The full-release listing
(:func:`release_names`) is the design (per actor: IEO neutral once and the five other emotions at LO, MD and HI;
the eleven other sentences once per emotion, level XX; 82 clips) minus the 20 clips absent from
``SentenceFilenames.csv`` (:data:`ABSENT`): 1002 lacks TIE neutral, 1008 all of WSI, 1009 all of MTI, 1019 all
of ITH, 1076 ITS neutral. That gives the per-emotion counts quoted in the literature, 1271 for each emotion and
1087 for neutral (:data:`FULL_RELEASE_COUNTS`), which the tests check.

Known faults of the release, from its issue tracker: ``1040_ITH_SAD_X.wav`` was misnamed (issue #6, renamed to
``…_XX`` in October 2022); older copies still have it, and it is read as ``…_XX`` (its id keeps its file name).
``1076_MTI_NEU_XX.wav`` reportedly does not decode and ``1076_MTI_SAD_XX.wav`` is silent (issue #8): with
``missing="error"`` a copy where that is so stops with the file named; ``missing="skip"`` leaves it out.

Names that do not follow the scheme are left out with one warning. On the full release (the folder is named
``CREMA-D``…, the copy holds at least 90 % of the clips, or ``full_release=True``) every missing or unexpected
clip is named.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import sertk
from sertk import Dataset, DatasetError, Utterance
from sertk.datasummary import (
    check_audio_files,
    handle_bad_audio,
    validate_missing_policy,
)
from sertk.errors import ConfigError
from sertk_plugins.datasets.filecorpus import (
    corpus_classes,
    count_differences,
    find_corpus_dir,
    full_release_error,
    name_differences,
    optional_flag,
    scan_names,
    shorten,
    wants_full_check,
)
from sertk_plugins.datasets.manifest import read_table

logger = logging.getLogger(__name__)

__all__ = [
    "ABSENT",
    "ACTORS",
    "CLASS_SETS",
    "EMOTIONS",
    "FULL_RELEASE_COUNTS",
    "LABELS",
    "LEVELS",
    "SENTENCES",
    "CremaD",
    "check_full_release",
    "parse_name",
    "read_demographics",
    "release_names",
]

#: emotion code → label
EMOTIONS: dict[str, str] = {"ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
                            "SAD": "sad"}
LABELS: tuple[str, ...] = tuple(EMOTIONS.values())
#: named class sets: label → class; labels not in the mapping are left out
CLASS_SETS: dict[str, dict[str, str]] = {"all": {label: label for label in LABELS}}
#: sentence code → text, in the release's order
SENTENCES: dict[str, str] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
#: level code → name
LEVELS: dict[str, str] = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
ACTORS: tuple[str, ...] = tuple(str(n) for n in range(1001, 1092))
#: the sentence recorded at three levels
LEVELLED_SENTENCE = "IEO"
#: clips of the design that the release does not have (absent from SentenceFilenames.csv)
ABSENT: frozenset[str] = frozenset(
    ["1002_TIE_NEU_XX", "1076_ITS_NEU_XX"]
    + [f"{actor}_{sentence}_{emotion}_XX" for actor, sentence in (("1008", "WSI"), ("1009", "MTI"), ("1019", "ITH"))
       for emotion in EMOTIONS]
)
#: clips per emotion code in the release
FULL_RELEASE_COUNTS: dict[str, int] = {"ANG": 1271, "DIS": 1271, "FEA": 1271, "HAP": 1271, "NEU": 1087, "SAD": 1271}
FULL_RELEASE_CLIPS = 7442
#: file stems known to be misnamed in some copies → the name the release gives them now
KNOWN_MISNAMED: dict[str, str] = {"1040_ITH_SAD_X": "1040_ITH_SAD_XX"}
DEMOGRAPHICS_FILE = "VideoDemographics.csv"
AUDIO_DIR = "AudioWAV"
RELEASE_DIRNAME = "CREMA-D"

_NAME_RE = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})\.(?i:wav)$")
_LFS_MAGIC = b"version https://git-lfs"
_LAYOUT = f"the CREMA-D repository (cloned with git lfs): a folder {AUDIO_DIR}/ with files like 1001_DFA_ANG_XX.wav"


@dataclasses.dataclass(frozen=True)
class _File:
    """One parsed file name."""

    path: Path
    actor: str
    sentence: str
    emotion: str  # code
    level: str  # code

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def clip(self) -> str:
        """The release's name of the clip (a known misnaming corrected)."""
        return f"{self.actor}_{self.sentence}_{self.emotion}_{self.level}"

    @property
    def label(self) -> str:
        return EMOTIONS[self.emotion]


def parse_name(path: Path) -> _File | str:
    """The fields of a CREMA-D file name, or why it is not one (a string)."""
    name = KNOWN_MISNAMED.get(path.stem, path.stem) + path.suffix
    m = _NAME_RE.match(name)
    if m is None:
        return "not of the form ACTOR_SEN_EMO_LV.wav (like 1001_DFA_ANG_XX.wav)"
    if m["actor"] not in ACTORS:
        return f"actor {m['actor']} is not 1001 to 1091"
    if m["sentence"] not in SENTENCES:
        return f"sentence {m['sentence']} is none of {' '.join(SENTENCES)}"
    if m["emotion"] not in EMOTIONS:
        return f"emotion {m['emotion']} is none of {' '.join(EMOTIONS)}"
    if m["level"] not in LEVELS:
        return f"level {m['level']} is none of {' '.join(LEVELS)}"
    return _File(path, m["actor"], m["sentence"], m["emotion"], m["level"])


def release_names() -> set[str]:
    """The 7442 clip names of the release (without ``.wav``): the design minus :data:`ABSENT`."""
    names: set[str] = set()
    for actor in ACTORS:
        for sentence in SENTENCES:
            for emotion in EMOTIONS:
                levels = ("LO", "MD", "HI") if sentence == LEVELLED_SENTENCE and emotion != "NEU" else ("XX",)
                names.update(f"{actor}_{sentence}_{emotion}_{level}" for level in levels)
    return names - ABSENT


def check_full_release(clips: Iterable[str]) -> list[str]:
    """Compare clip names (``1001_DFA_ANG_XX``) with the release; one line per difference, ``[]`` if none."""
    clips = list(clips)
    problems = name_differences(clips, release_names(), noun="clip")
    if problems:
        diffs = count_differences(Counter(c.split("_")[2] for c in clips), FULL_RELEASE_COUNTS)
        if diffs:
            problems.append(f"per emotion: {', '.join(diffs)}")
        problems.append(f"{len(clips)} clips in all (expected {FULL_RELEASE_CLIPS})")
    return problems


def read_demographics(path: Path) -> dict[str, dict[str, Any]]:
    """``VideoDemographics.csv`` → actor → ``{"gender": "F"|"M", "age": int, "race": str, "ethnicity": str}``.

    Raises
    ------
    DatasetError
        The file cannot be read, lacks the ActorID or Sex column, or a row is malformed (every bad row is named
        as ``file:line``).
    """
    rows = read_table(path, required=("actorid", "sex"), optional=("age", "race", "ethnicity"))
    people: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for line, row in rows:
        actor, sex = row["actorid"], row["sex"].lower()
        if actor in people:
            errors.append(f"{path}:{line}: actor {actor} is listed twice")
            continue
        if sex not in ("male", "female"):
            errors.append(f"{path}:{line}: Sex {row['sex']!r} for actor {actor}; expected Male or Female")
            continue
        person: dict[str, Any] = {"gender": "M" if sex == "male" else "F"}
        age = row.get("age", "")
        if age:
            if not age.isdigit():
                errors.append(f"{path}:{line}: Age {age!r} for actor {actor} is not a whole number")
                continue
            person["age"] = int(age)
        for column in ("race", "ethnicity"):
            if row.get(column):
                person[column] = row[column]
        people[actor] = person
    if errors:
        raise DatasetError(f"{len(errors)} bad row(s) in {path.name}: {'; '.join(errors)}")
    return people


class CremaD(Dataset):
    """CREMA-D: 91 actors (each its own group), 6 emotions, 7442 clips; gender and age from VideoDemographics.csv.

    Parameters
    ----------
    root
        The release repository (holding ``AudioWAV/``), the folder that holds it, or ``AudioWAV/`` itself.
    classes
        ``"all"`` (default: ``anger disgust fear happy neutral sad``), a list of labels to keep, or a mapping
        ``{label = class}`` (unlisted labels are left out).
    demographics
        Read ``VideoDemographics.csv`` (next to ``AudioWAV/``) into ``meta``: ``None`` (default) when it is there,
        ``true`` requires it, ``false`` ignores it.
    missing
        ``"error"`` (default): a file that is empty or cannot be decoded raises a :class:`DatasetError` naming it;
        ``"skip"``: leave such files out with a warning that names them (they are in :attr:`skipped`).
    full_release
        Check the listing against the release's 7442 clips and name each missing or unexpected one; ``None``
        (default) checks when the folder is named ``CREMA-D…`` or the copy holds at least 90 % of the clips.
        ``false`` loads a partial copy on purpose.
    """

    name: ClassVar[str] = "cremad"
    description: ClassVar[str] = ("CREMA-D (ODbL): 91 actors, 6 emotions, 7442 clips; speaker = group "
                                  "(speaker-kfold or leave-one-speaker-out)")
    requires_root: ClassVar[bool] = True
    #: what ``sertk data download cremad`` says: the audio is in Git LFS, so sertk does not download it
    download_hint: ClassVar[str] = ("its audio is stored in Git LFS; clone the repository with `git lfs clone "
                                    "https://github.com/CheyneyComputerScience/CREMA-D.git` (about 7 GB) and pass "
                                    "the clone with --data-root")

    def __init__(
        self,
        root: str | Path | None = None,
        classes: str | Sequence[str] | Mapping[str, str] = "all",
        demographics: bool | None = None,
        missing: str = "error",
        full_release: bool | None = None,
    ) -> None:
        super().__init__(root)
        self.class_map = corpus_classes(classes, corpus="CREMA-D", labels=LABELS, class_sets=CLASS_SETS)
        self.demographics = optional_flag("demographics", demographics)
        self.missing = validate_missing_policy(missing)
        self.full_release = optional_flag("full_release", full_release)
        if self.root is None:
            raise ConfigError(f"dataset 'cremad' needs its files: pass root (--data-root DIR), the CREMA-D "
                              f"repository that holds {AUDIO_DIR}/")
        self.corpus_dir = find_corpus_dir(self.root, corpus="CREMA-D", marker=AUDIO_DIR, layout=_LAYOUT)
        #: files left out: path → reason (names that do not parse; with ``missing="skip"``, unusable audio)
        self.skipped: dict[str, str] = {}

    def load(self) -> list[Utterance]:
        audio_dir = self.corpus_dir / AUDIO_DIR
        files: list[_File]
        files, unparsed = scan_names(audio_dir, parse_name, corpus="CREMA-D", example="1001_DFA_ANG_XX.wav",
                                     log=logger)
        by_clip: dict[str, Path] = {}
        for f in files:
            if f.clip in by_clip:
                raise DatasetError(f"CREMA-D clip {f.clip} is there twice: {by_clip[f.clip]} and {f.path}; "
                                   "remove one")
            by_clip[f.clip] = f.path

        named = self.corpus_dir.name.lower().startswith(RELEASE_DIRNAME.lower())
        if wants_full_check(self.full_release, n_found=len(files), n_expected=FULL_RELEASE_CLIPS,
                            named_like_release=named):
            problems = check_full_release(by_clip)
            if problems:
                raise full_release_error("CREMA-D", self.corpus_dir, f"{FULL_RELEASE_CLIPS} clips of 91 actors",
                                         problems)

        people = self._demographics({f.actor for f in files})
        kept = sorted((f for f in files if f.label in self.class_map), key=lambda f: (f.actor, f.id))
        bad = _explain_lfs(check_audio_files(f.path for f in kept), n_files=len(kept), audio_dir=audio_dir)
        handle_bad_audio(bad, self.missing, dataset=self.name, log=logger)
        self.skipped = {**{str(p): why for p, why in unparsed.items()}, **{str(p): why for p, why in bad.items()}}

        utterances = [self._utterance(f, people.get(f.actor, {})) for f in kept if f.path not in bad]
        logger.info("CREMA-D: %d utterances of %d actors (%s)", len(utterances), len({u.speaker for u in utterances}),
                    ", ".join(f"{k} {v}" for k, v in sorted(Counter(u.label for u in utterances).items())))
        return utterances

    def _demographics(self, actors: set[str]) -> dict[str, dict[str, Any]]:
        path = self.corpus_dir / DEMOGRAPHICS_FILE
        if self.demographics is False:
            return {}
        if not path.is_file():
            if self.demographics:
                raise DatasetError(f"no {DEMOGRAPHICS_FILE} in {self.corpus_dir} (demographics=true); it comes "
                                   "with the CREMA-D repository, or pass demographics=false")
            logger.info("CREMA-D: no %s in %s; meta has no gender or age", DEMOGRAPHICS_FILE, self.corpus_dir)
            return {}
        people = read_demographics(path)
        unlisted = sorted(actors - set(people))
        if unlisted:
            logger.warning("CREMA-D: %d actor(s) not in %s, their meta has no gender or age: %s", len(unlisted),
                           path, shorten(unlisted))
        return people

    def _utterance(self, f: _File, person: Mapping[str, Any]) -> Utterance:
        meta: dict[str, Any] = {
            "actor": f.actor,
            **person,
            "sentence": f.sentence,
            "sentence_text": SENTENCES[f.sentence],
            "emotion_code": f.emotion,
            "level": LEVELS[f.level],
            "original_label": f.label,
        }
        return Utterance(id=f.id, path=f.path, label=self.class_map[f.label], speaker=f.actor, group=f.actor,
                         meta=meta)


def _explain_lfs(bad: dict[Path, str], *, n_files: int, audio_dir: Path) -> dict[Path, str]:
    """Name git-lfs pointer files as such; if every file is one, no audio was downloaded at all: raise."""
    pointers = [p for p in bad if _is_lfs_pointer(p)]
    if pointers and len(pointers) == n_files:
        raise DatasetError(f"every file in {audio_dir} is a git-lfs pointer, not audio (e.g. {pointers[0].name}): "
                           "the repository was downloaded without git-lfs. Clone it with `git lfs clone "
                           "https://github.com/CheyneyComputerScience/CREMA-D.git`, or run `git lfs pull` in it")
    for p in pointers:
        bad[p] = "a git-lfs pointer, not audio (run `git lfs pull` in the repository)"
    return bad


def _is_lfs_pointer(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_LFS_MAGIC)) == _LFS_MAGIC
    except OSError:
        return False


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(CremaD)
