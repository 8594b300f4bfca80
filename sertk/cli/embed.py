"""``sertk embed``: embed audio files with any featurizer and save the vectors as an ``.npz``.

The output holds ``paths`` (as given, str), ``embeddings`` (float32, one row per path), ``fingerprint`` (the
featurizer's fingerprint as canonical JSON, 0-d str) and, with ``--skip-bad``, ``failed`` (the paths left out).
``--out`` must be a new file, or, with ``--overwrite``, an earlier output of ``sertk embed`` (never another file);
that is checked, with the options and the cache, before anything is embedded.
A file that cannot be embedded is named on stderr. Without ``--skip-bad`` the command then exits with status 1
and writes nothing (the good files are still cached, so the re-run after fixing the bad ones is quick).
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
import numpy as np

from sertk.atomic import atomic_open
from sertk.errors import ConfigError, SertkError

logger = logging.getLogger(__name__)


@click.command("embed")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("-f", "--featurizer", "featurizer_name", required=True, metavar="NAME",
              help="Featurizer to use (see `sertk list`).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Weights file; shorthand for -o weights=FILE.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Featurizer option; VALUE is read as a TOML literal when it is one, else as a string. "
                   "Repeatable.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .npz file (written atomically); must not exist, see --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Replace OUT if it is an earlier output of `sertk embed` (any other file is never replaced).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Files per featurizer call (default: the featurizer's own).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Embedding cache directory (default: $SERTK_CACHE_DIR, else $SERTK_HOME/cache).")
@click.option("--skip-bad", is_flag=True,
              help="Leave out files that cannot be embedded (listed in the array `failed`) instead of failing.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where featurization runs: this process, or a Ray cluster (docs/distributed.md).")
@click.option("--ray-address", default=None,
              help="Ray cluster to join (with --executor ray).  [default: $RAY_ADDRESS, else a new local cluster on "
                   "127.0.0.1]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray workers (with --executor ray).  [default: as many as the cluster holds]")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
              help="GPUs per Ray worker (with --executor ray).  [default: 1 when the cluster has GPUs, else 0]")
@click.pass_context
def command(ctx: click.Context, files: tuple[str, ...], featurizer_name: str, weights: str | None,
            options: tuple[str, ...], out: Path, overwrite: bool, batch_size: int | None, no_cache: bool,
            cache_dir: Path | None, skip_bad: bool, executor: str, ray_address: str | None, workers: int | None,
            gpus_per_worker: float | None) -> None:
    """Embed audio FILEs with a featurizer and write paths + embeddings to an .npz."""
    from sertk.executors import make_executor
    from sertk.experiment.outputs import check_output_file
    from sertk.featurization.cache import EmbeddingCache, canonical_json
    from sertk.featurization.embed import embed_paths
    from sertk.options import parse_assignments
    from sertk.plugins import get_component, instantiate

    if no_cache and cache_dir is not None:
        raise click.UsageError("--no-cache and --cache-dir exclude each other")
    if executor != "ray" and (ray_address, workers, gpus_per_worker) != (None, None, None):
        raise click.UsageError("--ray-address, --workers and --gpus-per-worker go with --executor ray")
    featurizer_options = parse_assignments(options)
    if weights is not None:
        if "weights" in featurizer_options:
            raise ConfigError("give the weights once: --weights or -o weights=..., not both")
        featurizer_options["weights"] = weights
    featurizer = instantiate(get_component("featurizer", featurizer_name), featurizer_options)
    check_output_file(out, overwrite=overwrite, is_ours=is_embeddings_file,
                      what="an embeddings file written by sertk embed")

    runner = make_executor(executor, address=ray_address, workers=workers, gpus_per_worker=gpus_per_worker)
    cache = None if no_cache else EmbeddingCache(cache_dir)
    try:
        result = embed_paths(featurizer, [Path(f) for f in files], cache=cache, batch_size=batch_size,
                             desc=f"embed ({featurizer_name})", executor=runner)
    finally:
        runner.close()
        if cache is not None:
            cache.close()

    for index, reason in result.failures.items():
        click.echo(f"cannot embed {files[index]}: {reason}", err=True)
    if result.failures and not skip_bad:
        raise SertkError(f"{len(result.failures)} of {len(files)} files could not be embedded (listed above); "
                         f"nothing written to {out}; pass --skip-bad to leave them out")

    arrays = {
        "paths": np.array([f for f, good in zip(files, result.ok) if good], dtype=str),
        "embeddings": np.ascontiguousarray(result.embeddings, dtype=np.float32),
        "fingerprint": np.array(canonical_json(featurizer.fingerprint())),
    }
    if skip_bad:
        arrays["failed"] = np.array([files[i] for i in result.failures], dtype=str)
    replacing = out.exists()
    with atomic_open(out, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first ** as allow_pickle
    if replacing:
        logger.info("--overwrite: replaced the earlier embeddings file %s", out)
    quiet = ctx.find_root().params.get("quiet", False)
    if not quiet:
        click.echo(f"wrote {out}: {result.embeddings.shape[0]} embeddings of dim {result.embeddings.shape[1]} "
                   f"({result.n_cached} cached, {result.n_computed} computed"
                   f"{f', {len(result.failures)} left out' if result.failures else ''})", err=True)


def is_embeddings_file(path: Path) -> bool:
    """Whether ``path`` is an ``.npz`` that ``sertk embed`` wrote (its three arrays, nothing a pickle needs)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False
    return {"paths.npy", "embeddings.npy", "fingerprint.npy"} <= names <= {"paths.npy", "embeddings.npy",
                                                                          "fingerprint.npy", "failed.npy"}
