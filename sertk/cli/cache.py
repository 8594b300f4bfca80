"""``sertk cache``: inspect and clear the embedding cache (see docs/cache.md)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import click

from sertk.errors import DamagedCacheError, SertkError

_cache_dir_option = click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Embedding cache directory (default: $SERTK_CACHE_DIR, else $SERTK_HOME/cache).")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _directory(cache_dir: Path | None) -> Path:
    from sertk.featurization.cache import default_cache_dir

    return cache_dir if cache_dir is not None else default_cache_dir()


@click.group("cache")
def command() -> None:
    """Inspect or clear the embedding cache."""


@command.command("info")
@_cache_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def info(cache_dir: Path | None, as_json: bool) -> None:
    """Show where the cache is, its size, its entries per featurizer fingerprint and the ν-SVM fits kept."""
    from sertk.featurization.cache import EmbeddingCache, database_path

    directory = _directory(cache_dir)
    report: dict[str, Any]
    if not database_path(directory).exists():
        report = {"path": str(database_path(directory)), "size_bytes": 0, "entries": 0, "fingerprints": []}
    else:
        with EmbeddingCache(directory) as cache:
            report = cache.info().to_dict()
    report["fits"] = _fits_report(directory)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    click.echo(f"cache:   {report['path']}")
    click.echo(f"size:    {_human(report['size_bytes'])}")
    click.echo(f"entries: {report['entries']}")
    fits = report["fits"]
    if fits["files"]:
        click.echo(f"fits:    {fits['files']} ν-SVM fit checkpoint(s), {_human(fits['size_bytes'])} in {fits['path']}")
    for entry in report["fingerprints"]:
        created = datetime.datetime.fromtimestamp(entry["created"]).strftime("%Y-%m-%d %H:%M")
        click.echo(f"  {entry['fp_key'][:12]}  {entry['featurizer']:<20} {entry['entries']:>8} entries  "
                   f"{_human(entry['bytes']):>10}  since {created}")
        click.echo(f"      {json.dumps(entry['fingerprint'], sort_keys=True)}")


def _fits_report(directory: Path) -> dict[str, Any]:
    from sertk.featurization.cache import fit_files, fits_dir

    files = fit_files(directory)
    return {"path": str(fits_dir(directory)), "files": len(files),
            "size_bytes": sum(f.stat().st_size for f in files)}


def _fit_files(directory: Path, featurizer: str | None, fingerprint: str | None) -> list[Path]:
    """The fit checkpoints a clear deletes: all of sertk's own (never a user's file there) when the whole cache is
    cleared, none when only one featurizer's or fingerprint's embeddings are."""
    from sertk.featurization.cache import fit_files

    return fit_files(directory) if featurizer is None and fingerprint is None else []


def _fits_phrase(fits: list[Path]) -> str:
    return f"the {len(fits)} ν-SVM fit checkpoint(s) in {fits[0].parent}"


def _delete_fits(fits: list[Path]) -> None:
    for f in fits:
        f.unlink(missing_ok=True)
    if fits:
        click.echo(f"deleted {len(fits)} fit checkpoint(s)", err=True)


@command.command("clear")
@_cache_dir_option
@click.option("--featurizer", "featurizer", metavar="NAME", default=None,
              help="Only the embeddings of this featurizer (every configuration of it).")
@click.option("--fingerprint", "fingerprint", metavar="KEY", default=None,
              help="Only the embeddings of this fingerprint key (or a unique prefix, as `sertk cache info` "
                   "shows it).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(cache_dir: Path | None, featurizer: str | None, fingerprint: str | None, yes: bool) -> None:
    """Delete cached embeddings: all of them (with the ν-SVM fits kept beside them), or one featurizer's, or one
    fingerprint's.

    A damaged cache database, which SQLite cannot read, is deleted as a whole (after confirmation).
    """
    from sertk.featurization.cache import EmbeddingCache, database_path

    directory = _directory(cache_dir)
    fits = _fit_files(directory, featurizer, fingerprint)
    if not database_path(directory).exists():
        if not fits:
            click.echo(f"nothing to clear: no cache at {database_path(directory)}", err=True)
            return
        if not yes:
            click.confirm(f"Delete {_fits_phrase(fits)}?", abort=True, err=True)
        _delete_fits(fits)
        return
    try:
        with EmbeddingCache(directory) as cache:
            _clear(cache, featurizer, fingerprint, yes, fits)
    except DamagedCacheError as exc:
        _delete_damaged(directory, exc, selective=featurizer is not None or fingerprint is not None, yes=yes,
                        fits=fits)


def _delete_damaged(directory: Path, exc: DamagedCacheError, *, selective: bool, yes: bool,
                    fits: list[Path]) -> None:
    from sertk.featurization.cache import remove_database

    if selective:
        raise SertkError(f"the embedding cache {exc.path} is damaged ({exc.detail}), so it cannot be cleared "
                         f"selectively; `sertk cache clear` without --featurizer/--fingerprint deletes it") from None
    if not yes:
        also = f" (and {_fits_phrase(fits)})" if fits else ""
        click.confirm(f"The embedding cache {exc.path} is damaged ({exc.detail}). Delete it{also}?", abort=True,
                      err=True)
    _delete_fits(fits)
    removed = remove_database(directory)
    click.echo(f"deleted the damaged embedding cache {exc.path} ({len(removed)} file(s)); embeddings are "
               f"recomputed on the next run", err=True)


def _clear(cache: Any, featurizer: str | None, fingerprint: str | None, yes: bool, fits: list[Path]) -> None:
    """Clear a readable cache: everything (with the fit checkpoints ``fits``), or one featurizer's or one
    fingerprint's embeddings.  One question covers all that is deleted, asked before anything is."""
    fp_key = None
    if fingerprint is not None:
        matches = cache.find_fingerprints(fingerprint.strip().lower())
        if not matches:
            raise SertkError(f"no cached fingerprint key starts with {fingerprint!r}; see `sertk cache info`")
        if len(matches) > 1:
            raise SertkError(f"fingerprint {fingerprint!r} is ambiguous: it starts "
                             f"{', '.join(m[:16] for m in matches)}; give more characters")
        fp_key = matches[0]
    what = "all cached embeddings" if fp_key is None and featurizer is None else "the cached embeddings"
    if featurizer is not None:
        what += f" of featurizer {featurizer!r}"
    if fp_key is not None:
        what += f" with fingerprint {fp_key[:12]}"
    count = cache.count(fp_key=fp_key, featurizer=featurizer)
    if count == 0 and (fp_key is not None or featurizer is not None):
        click.echo(f"nothing to clear: no {what[4:]} in {cache.path}", err=True)
        return
    if not yes:
        also = f" and {_fits_phrase(fits)}" if fits else ""
        click.confirm(f"Delete {what} ({count} entries) from {cache.path}{also}?", abort=True, err=True)
    _delete_fits(fits)
    deleted = cache.clear(fp_key=fp_key, featurizer=featurizer)
    click.echo(f"deleted {deleted} cached embeddings", err=True)
