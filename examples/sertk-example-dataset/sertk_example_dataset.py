"""An example sertk plugin: the Berlin Database of Emotional Speech (EMO-DB) as a dataset.

sertk finds this module through the entry point in the group ``sertk`` (see ``pyproject.toml``) and calls its
hook implementation, which registers the dataset class. The corpus is licensed; bring your own copy::

    ROOT/
    └── wav/
        ├── 03a01Fa.wav     speaker 03, text a01, emotion F (Freude: happiness), version a
        ├── 03a01Nc.wav
        └── …

The file name encodes everything: two digits of speaker, three characters of text, one letter of emotion (the
German initial), one letter of version. Ten actors; each is its own fold group.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import sertk

EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness",
            "N": "neutral"}
FILE_NAME = re.compile(r"^(?P<speaker>\d\d)(?P<text>[ab]\d\d)(?P<emotion>[WLEAFTN])(?P<version>[a-z])\.wav$")


class EmoDB(sertk.Dataset):
    """EMO-DB: 10 German actors, 7 emotions; ``emotions`` keeps a subset (e.g. ["anger", "neutral"])."""

    name = "example-emodb"
    description = "Berlin EMO-DB (example third-party plugin): 10 speakers, 7 emotions"
    requires_root = True

    def __init__(self, root: str | Path | None = None, emotions: Sequence[str] | None = None) -> None:
        super().__init__(root)
        if self.root is None:
            raise sertk.ConfigError("dataset 'example-emodb' needs --data-root: the folder that holds wav/")
        unknown = sorted(set(emotions or ()) - set(EMOTIONS.values()))
        if unknown:
            raise sertk.ConfigError(f"unknown emotion(s) {unknown}; known: {sorted(EMOTIONS.values())}")
        self.emotions = set(emotions) if emotions else None

    def utterances(self) -> Iterator[sertk.Utterance]:
        wav_dir = self.root / "wav"
        files = sorted(p for p in wav_dir.glob("*.wav") if not p.name.startswith("."))
        if not files:
            raise sertk.DatasetError(f"no EMO-DB wav files in {wav_dir}")
        for path in files:
            match = FILE_NAME.match(path.name)
            if match is None:
                raise sertk.DatasetError(f"{path}: not an EMO-DB file name (like 03a01Fa.wav)")
            label = EMOTIONS[match["emotion"]]
            if self.emotions is None or label in self.emotions:
                yield sertk.Utterance(id=path.stem, path=path, label=label, speaker=match["speaker"],
                                      group=match["speaker"], meta={"text": match["text"]})


@sertk.hookimpl
def sertk_register_datasets(register) -> None:
    register(EmoDB)
