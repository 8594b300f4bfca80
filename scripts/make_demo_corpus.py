#!/usr/bin/env python3
"""Make sertk's embedded demo corpus: synthetic "emotional" speech from espeak-ng.

What it makes
-------------
Six synthetic speakers (espeak-ng voice + variant), paired into three sessions of one male and one female voice,
as in IEMOCAP. Each speaker reads the same 24 short, emotionally neutral sentences of our own, six in each of
four classes named like IEMOCAP's four-class set (``ang``, ``hap``, ``neu``, ``sad``): 6 × 24 = 144 utterances,
about 200 s of audio in about 4 MB (the package keeps the corpus under 5 MB). The "emotion" is nothing but
class-specific prosody given to espeak-ng: base pitch (``-p``), speed (``-s``), amplitude (``-a``) and pitch range
(SSML ``<prosody range>``), each jittered per utterance by a seeded random amount so that the classes overlap.
Which class a speaker gives a sentence rotates from speaker to speaker (a Latin square), so no speaker says one
text in two classes and across speakers every sentence occurs in every class.

It is a demo that lets ``sertk run`` work on a fresh machine, NOT an emotion benchmark: the acoustic cues are
few, synthetic and exaggerated, and accuracy on it says nothing about real emotional speech.

Output (``sertk/data/demo/`` by default)::

    <out>/
        manifest.csv          id,file,label,speaker,group,text   (file relative to <out>)
        README.md             what this is, how it was made, tool versions, licence
        s1m_ang_00.flac ...   16 kHz mono 16-bit FLAC, one per utterance

Determinism: the plan is a fixed, sorted list and the jitter comes from ``numpy.random.default_rng`` seeded per
utterance, so the same espeak-ng and scipy versions give bit-identical samples (the README records both).

Usage::

    python scripts/make_demo_corpus.py [--out DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
SEED = 20240611
FORMAT = "flac"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "sertk" / "data" / "demo"

#: (speaker id, group, espeak-ng voice+variant); speaker ids are <session><gender>
SPEAKERS: tuple[tuple[str, str, str], ...] = (
    ("s1m", "s1", "en+m1"),
    ("s1f", "s1", "en+f2"),
    ("s2m", "s2", "en-us+m3"),
    ("s2f", "s2", "en-us+f4"),
    ("s3m", "s3", "en-gb-scotland+m7"),
    ("s3f", "s3", "en-029+f5"),
)


@dataclasses.dataclass(frozen=True)
class Prosody:
    """espeak-ng settings: base pitch 0-99, speed in words per minute, amplitude 0-200, pitch range in %."""

    pitch: int
    speed: int
    amplitude: int
    range: int


#: the class prosody before jitter; espeak-ng's defaults are pitch 50, speed 175, amplitude 100, range 100 %
CLASSES: dict[str, Prosody] = {
    "ang": Prosody(pitch=56, speed=200, amplitude=90, range=150),
    "hap": Prosody(pitch=66, speed=185, amplitude=78, range=185),
    "neu": Prosody(pitch=50, speed=170, amplitude=65, range=100),
    "sad": Prosody(pitch=38, speed=135, amplitude=50, range=55),
}

#: the largest per-utterance jitter: ± pitch steps, ± fraction of speed, amplitude and range
JITTER = {"pitch": 8, "speed": 0.12, "amplitude": 0.20, "range": 0.25}

SENTENCES: tuple[str, ...] = (
    "We sat near the back.",
    "Dinner will be ready soon.",
    "The shop opens at eight.",
    "She bought a blue jacket.",
    "There is milk in the fridge.",
    "He forgot his umbrella.",
    "The bus was late again.",
    "The lights are still on.",
    "Please close the window.",
    "We walked along the river.",
    "The report is on my desk.",
    "They moved to a new town.",
    "He read the letter twice.",
    "My brother plays the piano.",
    "Our flight lands at noon.",
    "He opened the second drawer.",
    "I will call you on Monday.",
    "She painted the door green.",
    "The box is under the stairs.",
    "The water is quite cold.",
    "I found an old photograph.",
    "The garden is full of birds.",
    "I put the keys on the table.",
    "The phone rang three times.",
)


@dataclasses.dataclass(frozen=True)
class UtteranceSpec:
    """One utterance to synthesise."""

    id: str
    label: str
    speaker: str
    group: str
    voice: str
    sentence: int
    text: str
    prosody: Prosody

    @property
    def file(self) -> str:
        return f"{self.id}.{FORMAT}"


def jittered(base: Prosody, rng: np.random.Generator) -> Prosody:
    """``base`` with a uniform random offset in ``±JITTER`` on each setting, rounded to espeak-ng's integers."""
    u = rng.uniform(-1.0, 1.0, size=4)
    return Prosody(
        pitch=int(np.clip(round(base.pitch + JITTER["pitch"] * u[0]), 0, 99)),
        speed=int(round(base.speed * (1 + JITTER["speed"] * u[1]))),
        amplitude=int(np.clip(round(base.amplitude * (1 + JITTER["amplitude"] * u[2])), 0, 200)),
        range=int(round(base.range * (1 + JITTER["range"] * u[3]))),
    )


def plan() -> list[UtteranceSpec]:
    """Every utterance of the corpus, sorted by id.

    Each speaker reads every sentence once, speaker ``k`` sentence ``j`` in class ``(j + k) mod 4``: a speaker
    never says one text in two classes, each class gets the same number of sentences per speaker, and across
    speakers every sentence occurs in every class.
    """
    specs = []
    labels = sorted(CLASSES)
    for k, (speaker, group, voice) in enumerate(SPEAKERS):
        count = dict.fromkeys(labels, 0)
        for j, text in enumerate(SENTENCES):
            c = (j + k) % len(labels)
            label = labels[c]
            rng = np.random.default_rng([SEED, k, c, j])
            specs.append(UtteranceSpec(
                id=f"{speaker}_{label}_{count[label]:02d}", label=label, speaker=speaker, group=group,
                voice=voice, sentence=j, text=text, prosody=jittered(CLASSES[label], rng),
            ))
            count[label] += 1
    return sorted(specs, key=lambda s: s.id)


def espeak_version() -> str:
    """The installed espeak-ng version, e.g. ``"1.51"``; raises ``FileNotFoundError`` if it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"text-to-speech:\s*([0-9][^\s]*)", out)
    return match.group(1) if match else out.strip()


def toolchain() -> dict[str, str]:
    """The versions that determine the samples bit for bit."""
    import scipy

    return {"espeak-ng": espeak_version(), "scipy": scipy.__version__, "numpy": np.__version__}


def synthesise(spec: UtteranceSpec) -> tuple[np.ndarray, int]:
    """espeak-ng's raw output for one utterance: int16 samples and their rate (22050 Hz for espeak voices)."""
    import soundfile as sf

    p = spec.prosody
    ssml = f'<speak><prosody range="{p.range}%">{spec.text}</prosody></speak>'
    with tempfile.TemporaryDirectory(prefix="sertk-demo-") as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-m", "-z", "-v", spec.voice, "-p", str(p.pitch), "-s", str(p.speed),
             "-a", str(p.amplitude), "-w", str(wav), ssml],
            check=True, capture_output=True,
        )
        samples, rate = sf.read(wav, dtype="int16")
    return samples, rate


def trim(samples: np.ndarray, rate: int, threshold: float = 0.01, margin_s: float = 0.05) -> np.ndarray:
    """Cut leading and trailing silence: keep ``margin_s`` around samples above ``threshold`` × full scale."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold * 32767)
    if loud.size == 0:
        return samples
    margin = int(margin_s * rate)
    return samples[max(0, loud[0] - margin): loud[-1] + margin + 1]


def render(spec: UtteranceSpec) -> np.ndarray:
    """The corpus samples of one utterance: int16, mono, :data:`SAMPLE_RATE`."""
    from scipy.signal import resample_poly

    samples, rate = synthesise(spec)
    samples = trim(samples, rate)
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        resampled = resample_poly(samples.astype(np.float64), SAMPLE_RATE // g, rate // g)
        samples = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    return samples


def write_audio(path: Path, samples: np.ndarray) -> None:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, format=FORMAT.upper(), subtype="PCM_16")
    _atomic_write(path, buf.getvalue())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def manifest_text(specs: list[UtteranceSpec]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "file", "label", "speaker", "group", "text"])
    for s in specs:
        writer.writerow([s.id, s.file, s.label, s.speaker, s.group, s.text])
    return buf.getvalue()


def readme_text(specs: list[UtteranceSpec], versions: dict[str, str], total_bytes: int, seconds: float) -> str:
    speakers = "\n".join(f"| {s} | {g} | `{v}` |" for s, g, v in SPEAKERS)
    classes = "\n".join(
        f"| {label} | {p.pitch} | {p.speed} | {p.amplitude} | {p.range} % |" for label, p in sorted(CLASSES.items())
    )
    tools = "\n".join(f"- {name}: {version}" for name, version in versions.items())
    per_cell = len(specs) // (len(SPEAKERS) * len(CLASSES))
    return f"""# sertk demo corpus (synthetic)

A tiny corpus of **synthetic** speech made with the espeak-ng text-to-speech engine, shipped so that
`sertk run` works on a fresh machine with no download. It is **not an emotion benchmark**: the "emotions" are
nothing but exaggerated prosody settings given to a formant synthesiser, so accuracy on it says nothing about
recognising emotion in human speech. Use it to check that a pipeline runs, not to compare methods.

- {len(specs)} utterances: {len(SPEAKERS)} synthetic speakers × {len(SENTENCES)} sentences, {per_cell} per speaker in
  each of {len(CLASSES)} classes ({", ".join(sorted(CLASSES))}, named like IEMOCAP's four-class set)
- {seconds:.0f} s of audio in {total_bytes / 1e6:.2f} MB: 16 kHz, mono, 16-bit {FORMAT.upper()}
- `manifest.csv`: `id,file,label,speaker,group,text`; `file` is relative to this directory
- `group` is the session: two speakers (one male, one female voice) per session, as in IEMOCAP, so a
  leave-one-group-out protocol is leave-one-session-out

## How it was made

`python scripts/make_demo_corpus.py` (in the sertk repository) rebuilds this directory. Each speaker is an
espeak-ng voice with a voice variant and reads the same {len(SENTENCES)} short, emotionally neutral sentences
(written for sertk), {per_cell} in each class. Speaker number k (0-5, in the table's order) reads sentence number j
(0-{len(SENTENCES) - 1}, in the script's order) in class number (j + k) mod 4 (classes in alphabetical order):
no speaker says one text in two classes, and across speakers every sentence occurs in every class.

| speaker | group | espeak-ng voice |
|---|---|---|
{speakers}

A class is a prosody setting: espeak-ng's base pitch (`-p`, 0-99), speed (`-s`, words per minute),
amplitude (`-a`, 0-200) and pitch range (SSML `<prosody range>`):

| class | pitch | speed | amplitude | range |
|---|---|---|---|---|
{classes}

Each utterance gets a uniform random offset of up to ±{JITTER["pitch"]} pitch steps, ±{JITTER["speed"]:.0%} speed,
±{JITTER["amplitude"]:.0%} amplitude and ±{JITTER["range"]:.0%} range (numpy `default_rng` seeded with a fixed
seed and the utterance's speaker, class and sentence), so the classes overlap. espeak-ng's 22.05 kHz output is
trimmed to 50 ms around the speech and resampled to 16 kHz with `scipy.signal.resample_poly`. With the same
versions of these tools the script reproduces the samples bit for bit:

{tools}

## Licence

The recordings are the output of espeak-ng (GPL-3.0-or-later), used as a tool: no part of espeak-ng itself is
distributed here. The sentences and the prosody settings were written for sertk and are distributed with it
under sertk's licence (MIT). No human speech is included.
"""


def build(out: Path, jobs: int = 2) -> list[UtteranceSpec]:
    """Synthesise the whole corpus into ``out`` (created if needed).

    Audio files that an earlier ``manifest.csv`` in ``out`` lists and the new plan does not are removed; no
    other file is touched.
    """
    versions = toolchain()
    specs = plan()
    out.mkdir(parents=True, exist_ok=True)
    wanted = {s.file for s in specs}
    old_manifest = out / "manifest.csv"
    if old_manifest.is_file():
        with open(old_manifest, newline="", encoding="utf-8") as fh:
            listed = {row.get("file") or "" for row in csv.DictReader(fh)}
        for name in sorted(listed - wanted):
            stale = out / name
            if name and stale.parent == out and stale.is_file():
                stale.unlink()

    def one(spec: UtteranceSpec) -> int:
        samples = render(spec)
        write_audio(out / spec.file, samples)
        return samples.size

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        n_samples = sum(pool.map(one, specs))
    total = sum((out / s.file).stat().st_size for s in specs)
    _atomic_write(out / "manifest.csv", manifest_text(specs).encode())
    readme = readme_text(specs, versions, total, n_samples / SAMPLE_RATE)
    _atomic_write(out / "README.md", readme.encode())
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{len(specs)} utterances, {n_samples / SAMPLE_RATE:.0f} s, {total / 1e6:.2f} MB in {out}")
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--jobs", type=int, default=2, help="espeak-ng processes at once (default 2)")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.jobs)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
