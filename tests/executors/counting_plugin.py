"""A third-party plugin for the executor tests: the tests install a copy as ``sertk_counting_plugin`` with an entry
point, so Ray workers find its featurizer through their own plugin registry, as they would a real one's.

The featurizer counts its work in a log file (one line ``pid name`` per file it embedded), so a test can tell what
was computed, how often and by which process, and it can be told to kill its worker process, to sleep, or to return
NaN for one file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

import sertk

#: the entry-point name (what ``SERTK_LOAD_PLUGINS`` selects)
ENTRY_POINT = "sertk-counting"


class CountingFeaturizer(sertk.Featurizer):
    """Four statistics of each file's samples; logs each file it embeds."""

    name = "counting"
    batch_size = 2
    dim = 4

    def __init__(self, log: str = "", delay: float = 0.0, die_on: str = "", nan_on: str = "") -> None:
        self.log, self.delay, self.die_on, self.nan_on = log, delay, die_on, nan_on

    def fingerprint(self):
        return {"name": self.name, "version": 1}  # log, delay, die_on change no embedding

    def embed(self, paths):
        import soundfile as sf

        if self.log:
            with open(f"{self.log}.starts", "a") as fh:  # one line per batch begun
                fh.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        rows = []
        for path in map(Path, paths):
            died = Path(f"{self.log}.died")
            if self.die_on == path.name and not died.exists():  # once: the replacement worker goes on
                died.write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies in the middle of its shard
            try:
                x, _ = sf.read(path, dtype="float32")
            except Exception as exc:  # noqa: BLE001 - whatever soundfile says, the file is not audio
                raise sertk.AudioError(path, f"not audio ({type(exc).__name__})") from None
            if self.log:
                with open(self.log, "a") as fh:
                    fh.write(f"{os.getpid()} {path.name}\n")
            row = [x.mean(), x.std(), x.min(), x.max()]
            rows.append([float("nan")] * 4 if path.name == self.nan_on else row)
        return np.array(rows, dtype=np.float32)


def square_unless_three(x: int) -> int:
    """A run for :func:`sertk.executors.ray.map_runs`: fails for 3."""
    if x == 3:
        raise ValueError("three is not welcome")
    return x * x


@sertk.hookimpl
def sertk_register_featurizers(register):
    register(CountingFeaturizer)

