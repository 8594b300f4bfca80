"""Peak memory of featurizing one long synthetic recording (the numbers in docs/long-recordings.md).

Usage: ``python scripts/measure_memory.py SECONDS [--rate 16000] [--featurizer handcrafted|imagebind-cut]``.
Writes a PCM-16 WAV of tones and noise to a temporary folder, then embeds it in a fresh process and prints the
process's peak resident memory (``ru_maxrss``) and the part of it above the baseline after imports.
``imagebind-cut`` runs only ImageBind's per-file decode and clip cutting (what grows with the file's length;
the model's own memory does not depend on it), so it needs no weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import resource, sys, time
from pathlib import Path
kind, path = sys.argv[1], Path(sys.argv[2])
import numpy, scipy.signal, soundfile
if kind == "handcrafted":
    from sertk_plugins.featurizers.handcrafted import HandcraftedFeaturizer
    f = HandcraftedFeaturizer()
    run = lambda: f.embed([path])
else:
    import torch
    from sertk_plugins.featurizers.imagebind import ImageBindFeaturizer
    f = ImageBindFeaturizer(num_workers=0)
    run = lambda: f._cut_file(path)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
run()
took = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{kind}: peak RSS {peak / 1024:.0f} MiB, {(peak - base) / 1024:.0f} MiB above the baseline "
      f"after imports ({base / 1024:.0f} MiB); {took:.1f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--featurizer", default="handcrafted", choices=["handcrafted", "imagebind-cut"])
    args = parser.parse_args()
    import numpy as np
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        rng = np.random.default_rng(0)
        block = args.rate * 60
        with sf.SoundFile(str(path), "w", samplerate=args.rate, channels=1, subtype="PCM_16") as out:
            for start in range(0, int(args.seconds * args.rate), block):
                n = min(block, int(args.seconds * args.rate) - start)
                t = (start + np.arange(n)) / args.rate
                wave = 0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * 0.3 * t)) * t)
                wave *= np.sin(2 * np.pi * 2 * t) ** 2
                out.write((wave + 0.01 * rng.standard_normal(n)).astype(np.float32))
        subprocess.run([sys.executable, "-c", CHILD, args.featurizer, str(path)], check=True)


if __name__ == "__main__":
    main()
