"""A miniature IEMOCAP in the real release layout, for tests (no corpus needed).

:func:`make_iemocap_tree` writes, per session, four dialogs (two improvised, two scripted) with every label kind
(``neu hap ang sad exc fru fea sur dis oth xxx``) in real label-file syntax, tiny 16 kHz 16-bit mono WAVs, and the
clutter a real copy carries: the ``Attribute``, ``Categorical`` and ``Self-evaluation`` sub-folders of
``EmoEvaluation`` (with ``.txt`` files a recursive glob would wrongly pick up), ``.pk`` files next to the wavs and
macOS ``._*`` files. One scripted dialog, ``Ses0NM_script01_3``, has utterances spoken by the *female* actor
(``Ses0NM_script01_3_F000``), as in the real corpus.

Each session holds the same 20 utterances (:data:`DIALOGS`); 14 of them are in the 4-class set
(ang 3, hap 5 = 2 hap + 3 exc, neu 3, sad 3), 7 per actor, 6 improvised and 8 scripted.
The audio of each utterance is a tone whose pitch depends on its label plus a little noise, so a classifier can
learn from hand-crafted features.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000

#: dialog name template → [(speaker suffix, label), ...]; ``{s}`` is the two-digit session number
DIALOGS: dict[str, list[tuple[str, str]]] = {
    "Ses{s}F_impro01": [("F000", "neu"), ("M000", "hap"), ("F001", "ang"), ("M001", "sad"), ("F002", "exc"),
                        ("M002", "fru")],
    "Ses{s}M_impro02": [("F000", "fea"), ("M000", "sur"), ("F001", "dis"), ("M001", "oth"), ("F002", "xxx"),
                        ("M002", "neu")],
    "Ses{s}F_script01_1": [("F000", "ang"), ("M000", "exc"), ("F001", "sad"), ("M001", "neu")],
    "Ses{s}M_script01_3": [("F000", "hap"), ("M000", "sad"), ("F001", "exc"), ("M001", "ang")],
}

_PITCH = {"neu": 140.0, "hap": 260.0, "exc": 300.0, "ang": 380.0, "sad": 110.0, "fru": 200.0, "fea": 420.0,
          "sur": 460.0, "dis": 170.0, "oth": 230.0, "xxx": 320.0}


def tree_utterances(sessions: Iterable[int] = (1, 2, 3, 4, 5)) -> Iterator[dict]:
    """What :func:`make_iemocap_tree` writes: dicts with id, dialog, session, gender (of the suffix), label,
    improvised, start, end, valence, arousal, dominance — in file order."""
    for session in sessions:
        for template, turns in DIALOGS.items():
            dialog = template.format(s=f"{session:02d}")
            for i, (suffix, label) in enumerate(turns):
                start = round(1.5 + 3.25 * i, 4)
                yield {
                    "id": f"{dialog}_{suffix}",
                    "dialog": dialog,
                    "session": session,
                    "gender": suffix[0],
                    "label": label,
                    "improvised": "_impro" in dialog,
                    "start": start,
                    "end": round(start + 2.125, 4),
                    "valence": 1.5 + (i % 4) * 0.5,
                    "arousal": 2.0 + (i % 3) * 0.5,
                    "dominance": 3.0 + (i % 2) * 0.5,
                }


def _label_file_text(rows: list[dict]) -> str:
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for r in rows:
        lines += [
            f"[{r['start']:.4f} - {r['end']:.4f}]\t{r['id']}\t{r['label']}\t"
            f"[{r['valence']:.4f}, {r['arousal']:.4f}, {r['dominance']:.4f}]",
            "C-E2:\tNeutral;\t()",
            "C-E3:\tFrustration; Anger;\t(a bit of both)",
            f"A-E3:\tval {int(r['valence'])}; act {int(r['arousal'])}; dom  {int(r['dominance'])};\t()",
            "",
        ]
    return "\n".join(lines) + "\n"


def _tone(uid: str, label: str, duration: float) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(uid.encode()))
    t = np.arange(int(duration * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = _PITCH[label] * (1.0 + 0.03 * rng.standard_normal())
    x = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def make_iemocap_tree(
    root: str | Path,
    *,
    name: str = "IEMOCAP_mini",
    sessions: Iterable[int] = (1, 2, 3, 4, 5),
    missing: Iterable[str] = (),
    unreadable: Iterable[str] = (),
    duration: float = 0.25,
    clutter: bool = True,
) -> Path:
    """Write a miniature IEMOCAP under ``root/name`` and return that folder.

    Parameters
    ----------
    name
        The corpus folder's name; ``"IEMOCAP_full_release"`` makes the loader check the published totals.
    sessions
        Which of the five sessions to write.
    missing
        Utterance ids whose wav is not written (their labels are).
    unreadable
        Utterance ids whose wav holds bytes that are not audio.
    duration
        Seconds of audio per utterance.
    clutter
        Also write what a real copy carries besides labels and wavs (sub-folders, ``.pk``, ``._*`` files).
    """
    corpus = Path(root) / name
    missing, unreadable = set(missing), set(unreadable)
    rows_by_dialog: dict[tuple[int, str], list[dict]] = {}
    for row in tree_utterances(sessions):
        rows_by_dialog.setdefault((row["session"], row["dialog"]), []).append(row)
    for (session, dialog), rows in rows_by_dialog.items():
        sdir = corpus / f"Session{session}"
        emo = sdir / "dialog" / "EmoEvaluation"
        emo.mkdir(parents=True, exist_ok=True)
        (emo / f"{dialog}.txt").write_text(_label_file_text(rows), encoding="utf-8")
        wav_dir = sdir / "sentences" / "wav" / dialog
        wav_dir.mkdir(parents=True, exist_ok=True)
        for r in rows:
            path = wav_dir / f"{r['id']}.wav"
            if r["id"] in missing:
                continue
            if r["id"] in unreadable:
                path.write_bytes(b"this is not a RIFF file" * 8)
                continue
            sf.write(path, _tone(r["id"], r["label"], duration), SAMPLE_RATE, subtype="PCM_16")
        if clutter:
            # sub-folders of EmoEvaluation that a loader must not read; their .txt files would double the counts
            # (Attribute holds lines in summary syntax, as a trap for a recursive glob)
            (emo / "Attribute").mkdir(exist_ok=True)
            (emo / "Attribute" / f"{dialog}_atr.txt").write_text(_label_file_text(rows), encoding="utf-8")
            (emo / "Categorical").mkdir(exist_ok=True)
            (emo / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                "".join(f"{r['id']} :Neutral state; ()\n" for r in rows), encoding="utf-8")
            (emo / "Self-evaluation").mkdir(exist_ok=True)
            (emo / "Self-evaluation" / f"{dialog}.anvil").write_text("<annotation/>\n", encoding="utf-8")
            (emo / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe")
            (wav_dir / f"{dialog}.pk").write_bytes(b"\x80\x04\x95pickle")
            (wav_dir / f"._{rows[0]['id']}.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    if clutter:
        corpus.mkdir(parents=True, exist_ok=True)
        (corpus / "README.txt").write_text("IEMOCAP miniature for tests\n", encoding="utf-8")
    return corpus
