"""``sertk compare``: WA, UA and macro-F1 of run folders side by side (see :mod:`sertk.experiment.compare`)."""

from __future__ import annotations

from pathlib import Path

import click

from sertk.experiment.compare import FORMATS, SORT_KEYS


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="markdown", show_default=True,
              help="Table format.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the table to FILE instead of stdout (new, or see --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--sort", type=click.Choice(sorted(SORT_KEYS)), default="ua", show_default=True,
              help="Rank the rows of each group by this metric.")
@click.option("--paper", is_flag=True,
              help="Add the paper's result next to a run in the paper's configuration (IEMOCAP 4-class, imagebind, "
                   "nusvm nu=0.1, sd-random 80/20).")
def command(run_dirs, fmt, output, overwrite, sort, paper):
    """Compare runs: one row per configuration (seeds folded into mean ± std), grouped by dataset and protocol.

    RUN_DIRS are folders written by `sertk run`, or sweep folders (their finished runs).
    """
    from sertk.atomic import atomic_write_text
    from sertk.errors import ConfigError
    from sertk.experiment.compare import compare, load_runs, render

    if output is not None and output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite to replace it, or choose another --output")
    if output is not None and output.is_dir():
        raise ConfigError(f"--output {output} is a folder; give a file name")
    text = render(compare(load_runs(run_dirs), sort=sort, paper=paper), fmt)
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text)
        click.echo(f"comparison: {output}", err=True)
