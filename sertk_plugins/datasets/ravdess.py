"""RAVDESS (Livingstone & Russo, PLoS ONE 2018): 24 actors, eight emotions, the audio-only speech (and song) files.

The Ryerson Audio-Visual Database of Emotional Speech and Song has 24 professional actors (12 female, 12 male) say
two statements in a neutral North American accent. Download the audio-only zips from Zenodo
(https://zenodo.org/record/1188976): ``Audio_Speech_Actors_01-24.zip`` (1440 files) and, if you want the sung
part, ``Audio_Song_Actors_01-24.zip``. Licence CC BY-NC-SA 4.0 (non-commercial; commercial licences are sold by the
authors). ``root`` is a folder of ``Actor_NN`` folders, or the folder that holds such folders — the speech and
the song release side by side::

    ravdess/
    ├── Audio_Speech_Actors_01-24/
    │   ├── Actor_01/
    │   │   ├── 03-01-01-01-01-01-01.wav     60 files per actor, 1440 in all (16-bit, 48 kHz)
    │   │   └── …
    │   └── Actor_24/
    └── Audio_Song_Actors_01-24/             optional, read with vocal_channel="song" or "all"
        ├── Actor_01/
        │   └── 03-02-01-01-01-01-01.wav     44 files per actor; there are no song files for Actor_18
        └── …

When ``root`` itself holds ``Actor_NN`` folders only those are read (a nested second copy of the same files, as
some mirrors carry, is ignored); otherwise every child folder that holds ``Actor_NN`` folders is, and a file found
twice is an error that names both copies.

A file name is seven two-digit fields, ``modality-vocal channel-emotion-intensity-statement-repetition-actor``::

    03-01-06-01-02-01-12    03 audio-only (01 and 02 are the video files)   01 speech, 02 song
                            emotion   01 neutral 02 calm 03 happy 04 sad 05 angry 06 fearful 07 disgust
                                      08 surprised (song: 01 to 06 only)
                            intensity 01 normal, 02 strong (none for neutral)
                            statement 01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
                            repetition 01, 02      actor 01 to 24: odd male, even female

The speaker is the actor folder's name (``Actor_01`` … ``Actor_24``) and the group is the speaker, so
leave-one-group-out (``--protocol loso``) is leave-one-speaker-out; ``speaker-kfold`` gives fewer, larger folds.
Only the speech part is loaded by default: song and speech differ in more than emotion.

Where the facts come from: the naming scheme, the emotion, intensity, statement and actor codes, "no strong
intensity for neutral", 60 × 24 = 1440 speech files, 16-bit 48 kHz and "no song files for Actor_18" — the Zenodo
record 1188976 (its description, and the Kaggle copy's description that repeats it); emotions of the song part —
the PLoS ONE paper's abstract (doi:10.1371/journal.pone.0196391); the licence — the Zenodo record's licence field
and the Kaggle copy (CC BY-NC-SA 4.0; the record's text speaks of "a Creative Commons Attribution license" and sells
commercial licences).
The 44 song files per actor (neutral at normal intensity, five emotions at two, two statements, two repetitions;
1012 in all) are derived from that design, not read from a published table.

Class sets: ``"all"`` (the eight emotions, named as RAVDESS names them). No smaller set is offered because we could
not cite a standard one; pass a list (``-o 'classes=["angry","happy","neutral","sad"]'``) or a mapping
(``{calm = "neutral", neutral = "neutral", …}``). Names that do not follow the scheme are left out with one
warning; on the full release (a folder named like the Zenodo zips, at least 90 % of the files, or
``full_release=True``) every missing or unexpected file of the loaded channels is named.
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
    audio_files,
    choice,
    corpus_classes,
    full_release_error,
    name_differences,
    optional_flag,
    wants_full_check,
    warn_unparsed,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNELS",
    "CLASS_SETS",
    "EMOTIONS",
    "INTENSITIES",
    "LABELS",
    "RAVDESS",
    "RELEASE_DIRS",
    "STATEMENTS",
    "check_full_release",
    "parse_name",
    "release_names",
]

#: emotion code → label
EMOTIONS: dict[str, str] = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                            "06": "fearful", "07": "disgust", "08": "surprised"}
LABELS: tuple[str, ...] = tuple(EMOTIONS.values())
#: named class sets: label → class; labels not in the mapping are left out
CLASS_SETS: dict[str, dict[str, str]] = {"all": {label: label for label in LABELS}}
#: the emotions of the song part
SONG_EMOTIONS: tuple[str, ...] = ("01", "02", "03", "04", "05", "06")
INTENSITIES: dict[str, str] = {"01": "normal", "02": "strong"}
STATEMENTS: dict[str, str] = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
#: vocal-channel code → name
CHANNELS: dict[str, str] = {"01": "speech", "02": "song"}
ACTORS: tuple[int, ...] = tuple(range(1, 25))
#: actors without song files in the release
NO_SONG_ACTORS: tuple[int, ...] = (18,)
#: the folders the Zenodo zips unpack to, per vocal channel
RELEASE_DIRS: dict[str, str] = {"speech": "Audio_Speech_Actors_01-24", "song": "Audio_Song_Actors_01-24"}
AUDIO_ONLY = "03"
#: the speech zip on Zenodo record 1188976 (doi:10.5281/zenodo.1188976); its size and md5 are the ones the record
#: lists, as quoted by several independent projects that verified them on download (see :meth:`RAVDESS.download`)
DOWNLOAD_URL = "https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1"
DOWNLOAD_SIZE = 208_468_073
DOWNLOAD_MD5 = "bc696df654c87fed845eb13823edef8a"
#: the folder under ``dest`` that :meth:`RAVDESS.download` extracts to (the zip holds Actor_01/ … Actor_24/)
DOWNLOAD_FOLDER = RELEASE_DIRS["speech"]

_NAME_RE = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.(?i:wav)$")
_ACTOR_DIR_RE = re.compile(r"^Actor_(\d\d)$")
_LAYOUT = ("folders Actor_01 … Actor_24 holding files like 03-01-06-01-02-01-12.wav, or a folder holding "
           f"{RELEASE_DIRS['speech']}/ (and {RELEASE_DIRS['song']}/)")


@dataclasses.dataclass(frozen=True)
class _File:
    """One parsed file name."""

    path: Path
    channel: str  # "speech" | "song"
    emotion: str  # code
    intensity: str  # code
    statement: str  # code
    repetition: int
    actor: int

    @property
    def id(self) -> str:
        return self.path.stem

    @property
    def speaker(self) -> str:
        return f"Actor_{self.actor:02d}"

    @property
    def label(self) -> str:
        return EMOTIONS[self.emotion]


def parse_name(path: Path) -> _File | str:
    """The fields of a RAVDESS audio file name, or why it is not one (a string)."""
    m = _NAME_RE.match(path.name)
    if m is None:
        return "not seven two-digit fields like 03-01-06-01-02-01-12.wav"
    modality, channel, emotion, intensity, statement, repetition, actor = m.groups()
    if modality != AUDIO_ONLY:
        return f"modality {modality} is not audio-only ({AUDIO_ONLY})"
    if channel not in CHANNELS:
        return f"vocal channel {channel} is neither 01 (speech) nor 02 (song)"
    if emotion not in EMOTIONS or (CHANNELS[channel] == "song" and emotion not in SONG_EMOTIONS):
        allowed = SONG_EMOTIONS if CHANNELS[channel] == "song" else tuple(EMOTIONS)
        return f"emotion {emotion} is not a {CHANNELS[channel]} emotion ({allowed[0]} to {allowed[-1]})"
    if intensity not in INTENSITIES:
        return f"intensity {intensity} is neither 01 (normal) nor 02 (strong)"
    if emotion == "01" and intensity != "01":
        return "neutral has no strong intensity (02)"
    if statement not in STATEMENTS:
        return f"statement {statement} is neither 01 nor 02"
    if repetition not in ("01", "02"):
        return f"repetition {repetition} is neither 01 nor 02"
    if int(actor) not in ACTORS:
        return f"actor {actor} is not 01 to 24"
    return _File(path, CHANNELS[channel], emotion, intensity, statement, int(repetition), int(actor))


def release_names(channel: str) -> set[str]:
    """The file stems of the full release for ``channel`` (``"speech"``: 1440, ``"song"``: 1012), from the
    published design: every emotion of the channel at both intensities (neutral at normal only), two statements,
    two repetitions, every actor (no song files for Actor_18)."""
    code = next(c for c, name in CHANNELS.items() if name == channel)
    emotions = tuple(EMOTIONS) if channel == "speech" else SONG_EMOTIONS
    return {
        f"{AUDIO_ONLY}-{code}-{emotion}-{intensity}-{statement}-{repetition}-{actor:02d}"
        for actor in ACTORS if not (channel == "song" and actor in NO_SONG_ACTORS)
        for emotion in emotions
        for intensity in (("01",) if emotion == "01" else ("01", "02"))
        for statement in STATEMENTS
        for repetition in ("01", "02")
    }


def check_full_release(stems: Iterable[str], channels: Sequence[str]) -> list[str]:
    """Compare the file stems found with the release for each of ``channels``; one line per difference."""
    stems = set(stems)
    problems = []
    for channel in channels:
        expected = release_names(channel)
        code = "-01-" if channel == "speech" else "-02-"
        found = {s for s in stems if s[2:6] == code}
        diffs = name_differences(found, expected, noun=f"{channel} file")
        if diffs:
            problems += diffs + [f"{len(found)} {channel} files in all (expected {len(expected)})"]
    return problems


def _intensity_filter(value: Any) -> str | None:
    text = choice("intensity", value, ("all", "normal", "strong"))
    return None if text == "all" else next(c for c, name in INTENSITIES.items() if name == text)


class RAVDESS(Dataset):
    """RAVDESS audio-only: 24 actors (each its own group), 8 emotions; speech by default, song on request.

    Parameters
    ----------
    root
        A folder of ``Actor_NN`` folders (``Audio_Speech_Actors_01-24``), or the folder that holds the speech and
        song releases.
    classes
        ``"all"`` (default: ``neutral calm happy sad angry fearful disgust surprised``), a list of labels to keep, or
        a mapping ``{label = class}`` (unlisted labels are left out).
    vocal_channel
        ``"speech"`` (default), ``"song"`` or ``"all"``.
    intensity
        ``"all"`` (default), ``"normal"`` or ``"strong"``; neutral is recorded at normal intensity only, so
        ``"strong"`` has no neutral utterances.
    missing
        ``"error"`` (default): a file that is empty or cannot be decoded raises a :class:`DatasetError` naming it;
        ``"skip"``: leave such files out with a warning that names them (they are in :attr:`skipped`).
    full_release
        Check that every file of the loaded channels' release is there (1440 speech, 1012 song) and name each
        missing or unexpected one; ``None`` (default) checks when a folder is named like the Zenodo zips or the copy
        holds at least 90 % of the files. ``false`` loads a partial copy on purpose.
    """

    name: ClassVar[str] = "ravdess"
    description: ClassVar[str] = ("RAVDESS audio-only (CC BY-NC-SA 4.0): 24 actors, 8 emotions, 1440 speech files "
                                  "(song on request); speaker = group")
    requires_root: ClassVar[bool] = True

    def __init__(
        self,
        root: str | Path | None = None,
        classes: str | Sequence[str] | Mapping[str, str] = "all",
        vocal_channel: str = "speech",
        intensity: str = "all",
        missing: str = "error",
        full_release: bool | None = None,
    ) -> None:
        super().__init__(root)
        self.class_map = corpus_classes(classes, corpus="RAVDESS", labels=LABELS, class_sets=CLASS_SETS)
        channel = choice("vocal_channel", vocal_channel, ("speech", "song", "all"))
        self.channels: tuple[str, ...] = ("speech", "song") if channel == "all" else (channel,)
        self.intensity = _intensity_filter(intensity)
        self.missing = validate_missing_policy(missing)
        self.full_release = optional_flag("full_release", full_release)
        if self.root is None:
            raise ConfigError("dataset 'ravdess' needs its files: pass root (--data-root DIR), the folder of "
                              f"Actor_NN folders ({RELEASE_DIRS['speech']}) or the folder that holds it")
        self.corpus_dir: Path = self.root
        #: the folders whose ``Actor_NN`` folders are read
        self.release_dirs = _find_release_dirs(self.corpus_dir)
        #: files left out: path → reason (names that do not parse; with ``missing="skip"``, unusable audio)
        self.skipped: dict[str, str] = {}

    @classmethod
    def download(cls, dest: str | Path) -> Path:
        """Download the speech part, ``Audio_Speech_Actors_01-24.zip`` (:data:`DOWNLOAD_URL`, 208 MB), into ``dest``
        and extract it to ``dest/Audio_Speech_Actors_01-24``; returns that folder (the ``--data-root``).

        Pinned: the size (:data:`DOWNLOAD_SIZE`, 208,468,073 bytes) and the md5 (:data:`DOWNLOAD_MD5`) of the
        Zenodo file; a download that differs is deleted. The extracted folder must also load as RAVDESS with the
        default options (the 1440-file check) before it is renamed into place. Resumable (an interrupted transfer
        continues from the ``.part`` file) and idempotent (a complete folder is left as it is). The zip is deleted
        afterwards. The song part is not downloaded.
        """
        from sertk.download import download_corpus

        def check(folder: Path) -> str:
            if not _actor_dirs(folder):
                raise DatasetError(f"{DOWNLOAD_URL} did not unpack to Actor_NN folders; the download is not RAVDESS")
            n = sum(1 for _ in cls(folder).utterances())
            return f"{n} utterances"

        return download_corpus("RAVDESS", DOWNLOAD_URL, dest, archive="Audio_Speech_Actors_01-24.zip",
                               folder=DOWNLOAD_FOLDER, check=check, md5=DOWNLOAD_MD5, size=DOWNLOAD_SIZE)

    def load(self) -> list[Utterance]:
        files, unparsed = self._scan()
        warn_unparsed(unparsed, corpus="RAVDESS", example="03-01-06-01-02-01-12.wav", log=logger)
        found = Counter(f.channel for f in files)
        for channel in self.channels:
            if found[channel]:
                continue
            there = ", ".join(f"{n} {c}" for c, n in sorted(found.items())) or "no"
            if channel == "song":
                hint = (f"the song part is a separate zip ({RELEASE_DIRS['song']}.zip on Zenodo): unpack it next to "
                        f"{RELEASE_DIRS['speech']}, or set vocal_channel=speech")
            else:
                hint = (f"pass the speech release ({RELEASE_DIRS['speech']}), or set vocal_channel=song to load the "
                        "song part")
            raise DatasetError(f"no RAVDESS {channel} files under {self.corpus_dir} ({there} files found); {hint}")
        files = [f for f in files if f.channel in self.channels]

        n_expected = sum(len(release_names(c)) for c in self.channels)
        named = any(d.name.lower() in {n.lower() for n in RELEASE_DIRS.values()} for d in self.release_dirs)
        if wants_full_check(self.full_release, n_found=len(files), n_expected=n_expected, named_like_release=named):
            problems = check_full_release((f.id for f in files), self.channels)
            if problems:
                release = " and ".join(f"{len(release_names(c))} {c} files" for c in self.channels)
                raise full_release_error("RAVDESS", self.corpus_dir, release, problems)

        kept = sorted((f for f in files if f.label in self.class_map
                       and (self.intensity is None or f.intensity == self.intensity)),
                      key=lambda f: (f.actor, f.id))
        bad = check_audio_files(f.path for f in kept)
        handle_bad_audio(bad, self.missing, dataset=self.name, log=logger)
        self.skipped = {**{str(p): why for p, why in unparsed.items()}, **{str(p): why for p, why in bad.items()}}

        utterances = [self._utterance(f) for f in kept if f.path not in bad]
        logger.info("RAVDESS: %d utterances (%s) of %d actors (%s)", len(utterances), " and ".join(self.channels),
                    len({u.speaker for u in utterances}),
                    ", ".join(f"{k} {v}" for k, v in sorted(Counter(u.label for u in utterances).items())))
        return utterances

    def _scan(self) -> tuple[list[_File], dict[Path, str]]:
        """Every ``.wav`` in the ``Actor_NN`` folders, parsed; duplicates (the same file in two copies) raise."""
        files: list[_File] = []
        unparsed: dict[Path, str] = {}
        seen: dict[str, Path] = {}
        for release_dir in self.release_dirs:
            for actor_dir in _actor_dirs(release_dir):
                folder_actor = int(_ACTOR_DIR_RE.match(actor_dir.name)[1])  # type: ignore[index]
                for path in audio_files(actor_dir):
                    parsed = parse_name(path)
                    if isinstance(parsed, str):
                        unparsed[path] = f"not a RAVDESS audio file name: {parsed}"
                        continue
                    if parsed.actor != folder_actor:
                        unparsed[path] = f"actor {parsed.actor:02d} in its name, but it is in {actor_dir.name}"
                        continue
                    if parsed.id in seen:
                        raise DatasetError(f"RAVDESS file {path.name} is there twice: {seen[parsed.id]} and {path}; "
                                           "pass the folder of the copy to use")
                    seen[parsed.id] = path
                    files.append(parsed)
        return files, unparsed

    def _utterance(self, f: _File) -> Utterance:
        meta: dict[str, Any] = {
            "actor": f.actor,
            "gender": "M" if f.actor % 2 else "F",
            "vocal_channel": f.channel,
            "emotion_code": f.emotion,
            "intensity": INTENSITIES[f.intensity],
            "statement": f.statement,
            "statement_text": STATEMENTS[f.statement],
            "repetition": f.repetition,
            "original_label": f.label,
        }
        return Utterance(id=f.id, path=f.path, label=self.class_map[f.label], speaker=f.speaker, group=f.speaker,
                         meta=meta)


def _actor_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _ACTOR_DIR_RE.match(p.name))


def _find_release_dirs(root: Path) -> list[Path]:
    """``[root]`` when it holds ``Actor_NN`` folders, else the children that do (speech and song side by side)."""
    if not root.exists():
        raise DatasetError(f"RAVDESS root {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"RAVDESS root {root} is not a folder; pass the folder that holds Actor_01 … Actor_24")
    if _actor_dirs(root):
        return [root]
    if _ACTOR_DIR_RE.match(root.name):
        raise DatasetError(f"RAVDESS root {root} is one actor's folder; pass the folder that holds Actor_01 … "
                           "Actor_24")
    children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _actor_dirs(p))
    if not children:
        raise DatasetError(f"no RAVDESS Actor_NN folders under {root}: expected {_LAYOUT}")
    return children


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(RAVDESS)
