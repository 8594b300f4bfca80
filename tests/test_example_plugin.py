"""The example third-party plugin (examples/sertk-example-dataset) installed into a fresh virtual environment.

The environment is made offline: ``python -m venv --without-pip``, then a ``.pth`` file that puts this checkout
and the running interpreter's site-packages (sertk's dependencies, pip, setuptools) on its path; the example is
installed with ``pip install --no-deps --no-build-isolation --no-index``. sertk then finds the plugin only through
the entry point in the group ``sertk`` that the install wrote — checked against the same environment before the
install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sertk-example-dataset"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None,
    reason="needs pip and setuptools in the test environment to install the example offline",
)


def _outer_site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return dirs


class Env:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "bin" / "python"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "SERTK_LOAD_PLUGINS"}
        env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
        result = subprocess.run([str(self.python), *args], capture_output=True, text=True, env=env,
                                cwd=self.root, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def sertk(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``sertk ARGS`` in the environment (``python -m sertk``: the real command with every built-in)."""
        return self.run("-m", "sertk", *args, check=check)

    def components(self) -> dict[str, dict]:
        rows = json.loads(self.sertk("list", "--json").stdout)["components"]
        return {r["name"]: r for r in rows if r["kind"] == "dataset"}


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    base = tmp_path_factory.mktemp("example-plugin")
    venv_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True, timeout=60)
    python = venv_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    lines = [str(REPO)] + [f"import site; site.addsitedir({d!r})" for d in _outer_site_dirs()]
    (Path(purelib) / "_sertk_test_outer.pth").write_text("\n".join(lines) + "\n")
    return Env(venv_dir)


@pytest.fixture(scope="module")
def installed(env, tmp_path_factory) -> Env:
    assert "example-emodb" not in env.components()  # before the install: not there
    source = tmp_path_factory.mktemp("src") / "sertk-example-dataset"  # build in a copy: no build/ in the checkout
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env.run("-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(source))
    return env


EMOTIONS = {"W": 380.0, "F": 260.0, "N": 140.0, "T": 110.0}  # anger, happiness, neutral, sadness → pitch


@pytest.fixture(scope="module")
def emodb(tmp_path_factory) -> Path:
    """A miniature EMO-DB: 3 speakers × 4 emotions × 2 texts, file names as in the corpus."""
    root = tmp_path_factory.mktemp("emodb")
    (root / "wav").mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16000
    for speaker in ("03", "08", "10"):
        for letter, f0 in EMOTIONS.items():
            for text in ("a01", "a02"):
                x = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.02 * rng.standard_normal()) * t)
                x += 0.02 * rng.standard_normal(t.size)
                sf.write(root / "wav" / f"{speaker}{text}{letter}a.wav", x.astype(np.float32), 16000)
    (root / "wav" / "._03a01Wa.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    return root


def test_installed_plugin_is_listed(installed):
    listing = installed.sertk("list").stdout
    line = next(x for x in listing.splitlines() if x.strip().startswith("example-emodb"))
    assert "example_emodb (sertk-example-dataset 0.1.0)" in line
    row = installed.components()["example-emodb"]
    assert (row["plugin"], row["package"], row["version"], row["builtin"]) == \
        ("example_emodb", "sertk-example-dataset", "0.1.0", False)
    assert {"iemocap", "folder", "csv"} <= set(installed.components())


def test_data_summary_on_the_plugin(installed, emodb):
    result = installed.sertk("data", "summary", "--dataset", "example-emodb", "--data-root", str(emodb), "--json")
    data = json.loads(result.stdout)
    assert data["n_utterances"] == 24
    assert data["labels"] == {"anger": 6, "happiness": 6, "neutral": 6, "sadness": 6}
    assert data["speakers"] == {"03": 8, "08": 8, "10": 8} == data["groups"]
    assert data["problems"] == []
    text = installed.sertk("data", "summary", "-d", "example-emodb", "--data-root", str(emodb),
                           "-o", 'emotions=["anger", "sadness"]').stdout
    assert "12 utterances · 2 labels · 3 speakers · 3 groups" in text


def test_plugin_errors_reach_the_user_as_one_line(installed, tmp_path):
    result = installed.sertk("data", "summary", "-d", "example-emodb", "--data-root", str(tmp_path), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: no EMO-DB wav files in {tmp_path}/wav"


def test_plugin_can_be_switched_off(installed):
    env = {k: v for k, v in os.environ.items() if k != "SERTK_LOAD_PLUGINS"}
    result = subprocess.run([str(installed.python), "-m", "sertk", "list", "--json"], capture_output=True,
                            text=True, env={**env, "SERTK_LOAD_PLUGINS": ""}, timeout=120, check=True)
    names = {r["name"] for r in json.loads(result.stdout)["components"]}
    assert "example-emodb" not in names and "iemocap" in names


def test_run_on_the_plugin(installed, emodb, tmp_path):
    out = tmp_path / "run"
    result = installed.sertk("run", "--dataset", "example-emodb", "--data-root", str(emodb),
                             "--featurizer", "handcrafted", "--classifier", "logreg", "--protocol", "loso",
                             "--no-cache", "--out", str(out), "--json")
    report = json.loads(result.stdout)
    assert report["dataset"]["name"] == "example-emodb" and report["dataset"]["n_utterances"] == 24
    assert report["protocol"]["n_folds"] == 3
    assert (out / "report.json").is_file()
    assert report["protocol"]["kind"] == "speaker-independent" and report["n_test"] == 24
    assert report["dataset"]["n_speakers"] == json.loads((out / "report.json").read_text())["dataset"]["n_speakers"]
