"""A toy plugin for tests: a sine-tone corpus, an FFT-band featurizer and a nearest-centroid classifier.

It lets pipeline and CLI tests run in seconds without depending on any built-in dataset, featurizer or
classifier; the real built-ins have tests of their own.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np

import sertk

TOY_LABELS = ("ang", "hap", "neu", "sad")
TOY_FREQS = {"ang": 330.0, "hap": 520.0, "neu": 220.0, "sad": 150.0}


def write_toy_corpus(root: Path, per_class_speaker: int = 5, speakers: int = 4, seed: int = 0) -> Path:
    """Short noisy tones whose pitch depends on the label: a corpus any sane pipeline classifies well."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["id,file,label,speaker"]
    t = np.arange(int(0.25 * 16000)) / 16000
    for s in range(speakers):
        for label in TOY_LABELS:
            for k in range(per_class_speaker):
                f0 = TOY_FREQS[label] * (1 + 0.04 * rng.standard_normal()) * (1 + 0.05 * s)
                wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(t.size)
                name = f"spk{s}_{label}_{k}.wav"
                sf.write(root / name, wave.astype(np.float32), 16000, subtype="PCM_16")
                rows.append(f"spk{s}_{label}_{k},{name},{label},spk{s}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


class ToyDataset(sertk.Dataset):
    """Tones in a folder with labels.csv (see write_toy_corpus)."""

    name = "toy"
    requires_root = True

    def __init__(self, root=None, speakers_per_group: int = 2):
        super().__init__(root)
        self.speakers_per_group = speakers_per_group

    def utterances(self):
        import csv

        if self.root is None or not (self.root / "labels.csv").exists():
            raise sertk.DatasetError(f"toy corpus not found under {self.root}")
        with open(self.root / "labels.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                spk = int(row["speaker"][3:])
                yield sertk.Utterance(row["id"], self.root / row["file"], row["label"], row["speaker"],
                                      f"g{spk // self.speakers_per_group}")


class ToyFeaturizer(sertk.Featurizer):
    """Log energies in 16 FFT bands; counts its calls so tests can see cache hits."""

    name = "toy-bands"
    batch_size = 8
    standardize = True
    calls = 0

    def __init__(self, n_bands: int = 16):
        self.n_bands = n_bands

    @property
    def dim(self):
        return self.n_bands

    def fingerprint(self):
        return {"name": self.name, "n_bands": self.n_bands, "version": 1}

    def embed(self, paths):
        import soundfile as sf

        type(self).calls += 1
        out = np.empty((len(paths), self.n_bands), dtype=np.float32)
        for i, path in enumerate(paths):
            try:
                wave, _ = sf.read(path, dtype="float32", always_2d=True)
            except Exception as exc:
                raise sertk.AudioError(path, str(exc)) from None
            spectrum = np.abs(np.fft.rfft(wave[:, 0], n=2048)) ** 2
            bands = np.array_split(spectrum[:512], self.n_bands)
            out[i] = np.log(np.array([b.sum() for b in bands]) + 1e-8)
        return out


class ToyCentroid:
    """Nearest class centroid, saved as .npz: a classifier with save()/load() for model tests."""

    name = "toy-centroid"

    def __init__(self, shrink: float = 0.0):
        self.shrink = shrink

    def get_params(self, deep=True):
        return {"shrink": self.shrink}

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_]) * (1 - self.shrink)
        return self

    def decision_function(self, X):
        return -((X[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def save(self, path):
        with open(path, "wb") as fh:
            np.savez(fh, classes=self.classes_.astype(str), centroids=self.centroids_, shrink=self.shrink)

    @classmethod
    def load(cls, path):
        with np.load(path, allow_pickle=False) as data:
            model = cls(float(data["shrink"]))
            model.classes_, model.centroids_ = data["classes"], data["centroids"]
        return model


@sertk.hookimpl
def sertk_register_classifiers(register):
    register(ToyCentroid)


@sertk.hookimpl
def sertk_register_datasets(register):
    register(ToyDataset)


@sertk.hookimpl
def sertk_register_featurizers(register):
    register(ToyFeaturizer)


toy_plugin = types.ModuleType("sertk_toy_plugin")
for _name in ("ToyDataset", "ToyFeaturizer", "ToyCentroid", "sertk_register_datasets", "sertk_register_featurizers",
              "sertk_register_classifiers"):
    setattr(toy_plugin, _name, globals()[_name])
