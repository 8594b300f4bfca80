"""The bad-input suite's fixtures: a small host (toy corpus and featurizer, sertk's ν-SVM, the scikit-learn
references, the built-in protocols), a command-line runner that never re-raises, and the check that a user error
is one line on stderr with exit status 1 and no traceback.

Every test builds its own bad input (files, folders, databases) under ``tmp_path`` and states what the user sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from toy_plugin import ToyFeaturizer, toy_plugin

import sertk.plugins
from sertk.cli.main import cli


@pytest.fixture
def host(monkeypatch):
    """The process-wide host: nusvm, the scikit-learn references, the protocols and the toy plugin."""
    host = sertk.plugins.PluginHost(builtins=["sertk_plugins.classifiers.nusvm",
                                             "sertk_plugins.classifiers.sklearn_reference",
                                             "sertk_plugins.protocols.standard"], load_external=False)
    host.register_plugin(toy_plugin, "toy")
    monkeypatch.setattr(sertk.plugins, "_host", host)
    ToyFeaturizer.calls = 0
    return host


def sertk_cli(*args: object, input: str | None = None) -> Result:
    """``sertk --no-progress ARGS`` as a user would run it (exceptions are caught, as the console script would)."""
    return CliRunner().invoke(cli, ["--no-progress", *map(str, args)], input=input)


def toy_run_args(root: Path, out: Path | None, *extra: object, cache: Path | None = None) -> list[object]:
    """``run`` on the toy corpus: toy-bands features, logreg, no figures."""
    args: list[object] = ["run", "--dataset", "toy", "--data-root", root, "--featurizer", "toy-bands",
                          "--classifier", "logreg", "--no-plots"]
    if out is not None:
        args += ["--out", out]
    args += ["--cache-dir", cache] if cache is not None else ["--no-cache"]
    return args + list(extra)


def assert_user_error(result: Result, *fragments: str) -> str:
    """The user sees exactly one line, ``Error: …`` holding every fragment, exit status 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def assert_usage_error(result: Result, *fragments: str) -> None:
    """click's own check of an option (exit status 2, "Usage: …" and an ``Error:`` line naming the option)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)


def assert_no_work_done() -> None:
    """Nothing was featurized: the error came before any audio was embedded."""
    assert ToyFeaturizer.calls == 0


def listing(folder: Path) -> Sequence[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
