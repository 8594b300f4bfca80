"""Miniature EmoDB, RAVDESS and CREMA-D trees in the real release layouts, with tiny real WAV files.

Each builder writes a handful of files per speaker under ``root/name`` and returns the folder to pass as
``--data-root``. The audio of a file is 0.1 s of a tone whose pitch depends on the emotion, plus a little noise (so
the hand-crafted featurizer and a classifier have something to learn in the end-to-end tests). ``missing`` writes a
dangling link instead of the file, ``unreadable`` bytes that are not audio, ``empty`` a zero-byte file, ``extra``
further (usually badly named) files with real audio.

:func:`touch_tree` lays out full-size listings (1440, 7442 names) as empty files, for the full-release checks, with
the audio check monkeypatched away by the test.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000
DURATION = 0.1

# -- audio -----------------------------------------------------------------------------------------------------


def tone(uid: str, pitch: float, duration: float = DURATION) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(uid.encode()))
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch * (1.0 + 0.02 * rng.standard_normal())
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _write(path: Path, pitch: float, *, missing: set[str], unreadable: set[str], empty: set[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    if stem in missing:
        path.symlink_to(path.with_name(f"gone-{path.name}"))
    elif stem in unreadable:
        path.write_bytes(b"this is not a RIFF file" * 8)
    elif stem in empty:
        path.write_bytes(b"")
    else:
        sf.write(path, tone(stem, pitch), SAMPLE_RATE, subtype="PCM_16")


def touch_tree(folder: Path, names: Iterable[str], suffix: str = ".wav") -> Path:
    """Empty files ``folder/<name><suffix>`` (a listing only; the test replaces the audio check)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}{suffix}").touch()
    return folder


# -- EmoDB -------------------------------------------------------------------------------------------------------
EMODB_SPEAKERS = ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16")
EMODB_TEXTS = ("a01", "a02", "a04", "a05", "a07", "b01", "b02", "b03", "b09", "b10")
EMODB_LETTERS = "WLEAFTN"
_EMODB_PITCH = {"W": 380.0, "L": 120.0, "E": 170.0, "A": 420.0, "F": 280.0, "T": 110.0, "N": 150.0}


def emodb_names(speakers: Sequence[str] = EMODB_SPEAKERS) -> list[str]:
    """Seven files per speaker, one per emotion letter (texts rotate with the speaker), plus a second take
    (version b) of anger for every speaker: 8 per speaker."""
    names = []
    for i, speaker in enumerate(speakers):
        for j, letter in enumerate(EMODB_LETTERS):
            names.append(f"{speaker}{EMODB_TEXTS[(i + j) % len(EMODB_TEXTS)]}{letter}a")
        names.append(f"{speaker}{EMODB_TEXTS[i % len(EMODB_TEXTS)]}Wb")
    return names


def make_emodb_tree(root: str | Path, *, name: str = "emodb_mini", speakers: Sequence[str] = EMODB_SPEAKERS,
                    missing: Iterable[str] = (), unreadable: Iterable[str] = (), empty: Iterable[str] = (),
                    extra: Iterable[str] = (), clutter: bool = True) -> Path:
    """``root/name/wav/*.wav`` (8 files per speaker, see :func:`emodb_names`); returns ``root/name``."""
    corpus = Path(root) / name
    wav = corpus / "wav"
    wav.mkdir(parents=True, exist_ok=True)
    sets = {"missing": set(missing), "unreadable": set(unreadable), "empty": set(empty)}
    for stem in emodb_names(speakers):
        _write(wav / f"{stem}.wav", _EMODB_PITCH[stem[5]], **sets)
    for file_name in extra:
        _write(wav / file_name, 200.0, **sets)
    if clutter:  # what the download carries besides wav/, and macOS debris
        (corpus / "lablaut").mkdir(exist_ok=True)
        (corpus / "lablaut" / "03a01Fa.lab").write_text("label file\n")
        (wav / "._03a01Fa.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
        (wav / "notes.txt").write_text("not audio\n")
    return corpus


# -- RAVDESS -----------------------------------------------------------------------------------------------------
_RAVDESS_PITCH = {"01": 150.0, "02": 130.0, "03": 280.0, "04": 110.0, "05": 380.0, "06": 420.0, "07": 170.0,
                  "08": 330.0}


def ravdess_names(channel: str = "speech", actors: Sequence[int] = (1, 2, 3, 4)) -> list[str]:
    """Per actor one file per emotion of the channel (8 speech, 6 song): neutral at normal intensity, the others
    strong for odd emotion codes and normal for even ones; statement and repetition vary with the emotion."""
    code = "01" if channel == "speech" else "02"
    emotions = ("01", "02", "03", "04", "05", "06", "07", "08") if channel == "speech" else \
        ("01", "02", "03", "04", "05", "06")
    names = []
    for actor in actors:
        for k, emotion in enumerate(emotions):
            intensity = "01" if emotion == "01" or k % 2 else "02"
            names.append(f"03-{code}-{emotion}-{intensity}-{k % 2 + 1:02d}-{k // 2 % 2 + 1:02d}-{actor:02d}")
    return names


def make_ravdess_tree(root: str | Path, *, name: str = "ravdess_mini", actors: Sequence[int] = (1, 2, 3, 4),
                      speech: str | None = "speech_mini", song: str | None = None, flat: bool = False,
                      missing: Iterable[str] = (), unreadable: Iterable[str] = (), empty: Iterable[str] = (),
                      extra: dict[str, Sequence[str]] | None = None) -> Path:
    """``root/name/<speech>/Actor_NN/*.wav`` (and ``<song>/Actor_NN`` when ``song`` names a folder); with ``flat``
    the speech ``Actor_NN`` folders sit in ``root/name`` itself. ``extra`` maps an actor folder (``"Actor_01"``) to
    further file names. Returns ``root/name``."""
    corpus = Path(root) / name
    corpus.mkdir(parents=True, exist_ok=True)
    sets = {"missing": set(missing), "unreadable": set(unreadable), "empty": set(empty)}
    parts = [("speech", corpus if flat else corpus / speech)] if speech else []
    if song:
        parts.append(("song", corpus / song))
    for channel, folder in parts:
        for stem in ravdess_names(channel, actors):
            _write(folder / f"Actor_{stem[-2:]}" / f"{stem}.wav", _RAVDESS_PITCH[stem[6:8]], **sets)
    if parts:
        for actor_dir, file_names in (extra or {}).items():
            for file_name in file_names:
                _write(parts[0][1] / actor_dir / file_name, 200.0, **sets)
        (parts[0][1] / f"Actor_{actors[0]:02d}" / "._03-01-01-01-01-01-01.wav").write_bytes(b"\x00\x05\x16\x07Mac")
    return corpus


# -- CREMA-D -----------------------------------------------------------------------------------------------------
CREMAD_EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
_CREMAD_PITCH = {"ANG": 380.0, "DIS": 170.0, "FEA": 420.0, "HAP": 280.0, "NEU": 150.0, "SAD": 110.0}
#: the real rows of VideoDemographics.csv for the first actors
CREMAD_DEMOGRAPHICS = {
    "1001": (51, "Male", "Caucasian", "Not Hispanic"),
    "1002": (21, "Female", "Caucasian", "Not Hispanic"),
    "1003": (21, "Female", "Caucasian", "Not Hispanic"),
    "1004": (42, "Female", "Caucasian", "Not Hispanic"),
    "1005": (29, "Male", "African American", "Not Hispanic"),
}


def cremad_names(actors: Sequence[str] = ("1001", "1002", "1003", "1004")) -> list[str]:
    """Per actor: DFA in all six emotions (level XX), IEO neutral (XX) and IEO anger at HI and LO — 9 clips."""
    names = []
    for actor in actors:
        names += [f"{actor}_DFA_{emotion}_XX" for emotion in CREMAD_EMOTIONS]
        names += [f"{actor}_IEO_NEU_XX", f"{actor}_IEO_ANG_HI", f"{actor}_IEO_ANG_LO"]
    return names


def make_cremad_tree(root: str | Path, *, name: str = "cremad_mini",
                     actors: Sequence[str] = ("1001", "1002", "1003", "1004"), demographics: bool = True,
                     missing: Iterable[str] = (), unreadable: Iterable[str] = (), empty: Iterable[str] = (),
                     lfs: Iterable[str] | None = None, extra: Iterable[str] = (), clutter: bool = True) -> Path:
    """``root/name/AudioWAV/*.wav`` (:func:`cremad_names`) and ``VideoDemographics.csv`` (the real rows of the
    actors); ``lfs`` lists clips written as git-lfs pointer files (``None``: none). Returns ``root/name``."""
    corpus = Path(root) / name
    audio = corpus / "AudioWAV"
    audio.mkdir(parents=True, exist_ok=True)
    sets = {"missing": set(missing), "unreadable": set(unreadable), "empty": set(empty)}
    pointers = set(lfs or ())
    for stem in [*cremad_names(actors), *(Path(e).stem for e in extra)]:
        path = audio / f"{stem}.wav"
        if stem in pointers:
            path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:c6f94b25\nsize 72862\n")
        else:
            emotion = stem.split("_")[2] if stem.count("_") >= 2 else "NEU"
            _write(path, _CREMAD_PITCH.get(emotion, 200.0), **sets)
    if demographics:
        lines = ['"ActorID","Age","Sex","Race","Ethnicity"']
        lines += [f'{a},{age},"{sex}","{race}","{eth}"' for a, (age, sex, race, eth) in CREMAD_DEMOGRAPHICS.items()
                  if a in actors]
        (corpus / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    if clutter:
        (corpus / "AudioMP3").mkdir(exist_ok=True)
        (corpus / "AudioMP3" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")
        (audio / "._1001_DFA_ANG_XX.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    return corpus
