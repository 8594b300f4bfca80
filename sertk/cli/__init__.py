"""The ``sertk`` command line: one module per sub-command, assembled in :mod:`sertk.cli.main`."""

from sertk.cli.main import cli, main

__all__ = ["cli", "main"]
