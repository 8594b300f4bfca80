"""``sertk data``: get a dataset (``sertk data download``) and look at it before running experiments on it
(``sertk data summary``).

The logic lives in :mod:`sertk.datasummary` and :mod:`sertk.download` (and each dataset's ``download``
classmethod); this module parses the options and prints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click


@click.group("data")
def data() -> None:
    """Download and inspect datasets."""


@data.command("download")
@click.argument("name")
@click.argument("dest", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def download(name: str, dest: Path) -> None:
    """Download the freely available dataset NAME into the folder DIR, check it and unpack it.

    Datasets that offer a download (emodb, ravdess) fetch their release archive (resuming an interrupted
    transfer when run again), verify it, extract it safely and check that it loads; running the command again on
    a complete folder does nothing. The command to run next is printed at the end.
    """
    import shlex

    from sertk.errors import DatasetError
    from sertk.plugins import get_component

    component = get_component("dataset", name)
    fetch = getattr(component.cls, "download", None)
    if not callable(fetch):
        hint = getattr(component.cls, "download_hint", None) or (
            "get its files as its documentation says (`sertk list` names it; docs/datasets.md), then pass them "
            "with --data-root")
        raise DatasetError(f"sertk cannot download dataset {name!r}: {hint}")
    handler = _EchoHandler()
    log = logging.getLogger("sertk.download")
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        root = fetch(dest.expanduser())
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = old_propagate
    click.echo(f"{name} is ready in {root}; next:")
    click.echo(f"  sertk run --dataset {shlex.quote(name)} --data-root {shlex.quote(str(root))}")


class _EchoHandler(logging.Handler):
    """Shows what :mod:`sertk.download` reports (downloading, resuming, already complete) on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(record.getMessage(), err=True)


@data.command("summary")
@click.option("-d", "--dataset", "dataset", required=True, help="Dataset name (see `sertk list`).")
@click.option("--data-root", type=click.Path(path_type=Path), help="The dataset's files (folder or manifest).")
@click.option("-o", "--option", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Dataset option; the value is read as TOML when it parses (-o sessions=[1,2] "
                   "-o improvised_only=true), else as a string (-o classes=4class-noexc). Repeatable.")
@click.option("--check-audio/--no-check-audio", default=True, show_default=True,
              help="Check that every audio file exists and its header decodes.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when problems are found.")
def summary(dataset: str, data_root: Path | None, assignments: tuple[str, ...], check_audio: bool, as_json: bool,
            strict: bool) -> None:
    """Counts per label, speaker and group, and the problems found (missing or unreadable files, speakers in
    several groups, classes with fewer than two utterances, …).

    Missing files are listed rather than fatal: a dataset with a `missing` option is loaded with missing=skip
    unless -o missing=... says otherwise.
    """
    import json

    from sertk.datasummary import summarize_dataset
    from sertk.options import parse_assignments

    options = parse_assignments(assignments)
    result = summarize_dataset(dataset, data_root, options, check_audio=check_audio)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        click.echo(render(result))
    if strict and result.problems:
        raise SystemExit(1)


def _table(title: str, rows: dict[str, dict[str, int]], labels: list[str],
           extra: dict[str, str] | None = None, extra_title: str = "", total: str = "total") -> list[str]:
    width = max([len(title)] + [len(r) for r in rows])
    cols = [max(len(lab), 5) for lab in labels]
    head = f"{title:<{width}}  " + "  ".join(f"{lab:>{w}}" for lab, w in zip(labels, cols)) + f"  {total:>6}"
    if extra is not None:
        head += f"  {extra_title}"
    lines = [head]
    for key, counts in rows.items():
        line = f"{key:<{width}}  " + "  ".join(f"{counts.get(lab, 0):>{w}}" for lab, w in zip(labels, cols))
        line += f"  {sum(counts.values()):>6}"
        if extra is not None:
            line += f"  {extra.get(key, '')}"
        lines.append(line)
    return lines


def render(result) -> str:
    """The human-readable summary."""
    labels = list(result.labels)
    lines = [f"dataset {result.dataset}" + (f"  root {result.root}" if result.root else "")]
    if result.options:
        lines.append("options " + ", ".join(f"{k}={v!r}" for k, v in result.options.items()))
    lines.append(f"{result.n_utterances} utterances · {len(labels)} labels · {len(result.speakers)} speakers · "
                 f"{len(result.groups)} groups")
    if result.n_utterances:
        lines += ["", *_table("label", {lab: {"n": n} for lab, n in result.labels.items()}, [], total="count")]
        lines += ["", *_table("group", result.label_by_group, labels)]
        groups_of = {s: ", ".join(gs) for s, gs in result.speaker_groups.items()}
        lines += ["", *_table("speaker", result.label_by_speaker, labels, groups_of, "groups")]
    lines.append("")
    if result.problems:
        lines.append(f"problems ({len(result.problems)}):")
        lines += [f"  - [{p.kind}] {p.message}" for p in result.problems]
    else:
        lines.append("no problems found")
    return "\n".join(lines)


command = data
