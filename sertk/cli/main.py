"""The top-level ``sertk`` group: logging, progress, error handling, and the sub-commands.

A :class:`sertk.errors.SertkError` becomes one line on stderr and exit status 1 (``--debug`` shows the
traceback); click's usage errors exit with 2. SIGTERM stops a command as Ctrl-C does and exits with 143.
Plugins add commands through ``sertk_register_commands``.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import click

from sertk import __version__
from sertk.errors import SertkError

#: modules that each define ``command`` (a click command or group) to add to ``sertk``
COMMAND_MODULES = (
    "sertk.cli.run",
    "sertk.cli.list",
    "sertk.cli.embed",
    "sertk.cli.cache",
    "sertk.cli.data",
    "sertk.cli.predict",
    "sertk.cli.sweep",
    "sertk.cli.compare",
    "sertk.cli.bench",
)


class SertkGroup(click.Group):
    """A group that turns sertk's errors into one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SertkError as exc:
            if ctx.meta.get("sertk.debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=SertkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sertk")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--progress/--no-progress", default=None, help="Show progress bars (default: on a terminal).")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, progress: bool | None, debug: bool) -> None:
    """Speech emotion recognition experiments: datasets, featurizers and classifiers as plugins."""
    from sertk import progress as progress_mod

    ctx.meta["sertk.debug"] = debug
    level = logging.WARNING if quiet else (logging.INFO if verbose <= 1 else logging.DEBUG)
    if verbose == 0 and not quiet:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    if quiet:
        progress = False
    progress_mod.configure(enabled=progress)


def _add_commands() -> None:
    for module_name in COMMAND_MODULES:
        cli.add_command(importlib.import_module(module_name).command)


_add_commands()


_terminated = False


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM raises KeyboardInterrupt where Ctrl-C's would be, so that the same clean-up runs."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; plugin commands are added here so ``import sertk.cli`` stays cheap.

    SIGTERM (``kill``, a batch scheduler's time limit) stops the command the way Ctrl-C does: a run's half-written
    folder is removed, the embeddings of finished batches stay cached and a ν-SVM fit keeps its state for the next
    run; the exit status is then 143 (128 + SIGTERM). A process started with SIGTERM ignored keeps ignoring it."""
    from sertk.plugins import get_host

    try:
        get_host().add_commands(cli)
    except SertkError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, prog_name="sertk")  # Ctrl-C (and so SIGTERM): "Aborted!", exit status 1
    except SystemExit:
        if _terminated:
            sys.exit(128 + signal.SIGTERM)
        raise
