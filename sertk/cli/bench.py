"""``sertk bench``: how fast sertk runs on this machine (logic in :mod:`sertk.bench`).

Featurizer throughput from files to cached embeddings, through the path ``sertk embed`` takes, for every
combination of ``--batch-size``, ``--workers`` and ``--dtype`` given (comma lists); the achieved TFLOP/s next to
a matrix product in the same dtype timed on the spot; ν-SVM fit and predict times at ``--svm-sizes``, next to
scikit-learn with ``--reference``. Prints tables, and with ``--json FILE`` writes everything, the machine included.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from sertk.errors import ConfigError

#: the report's format version (the key ``sertk_bench`` of the JSON)
REPORT_VERSION = 1


def _int_list(value: str | None, option: str, minimum: int) -> list[int] | None:
    if value is None:
        return None
    if value.strip().lower() == "none":
        return []
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers", param_hint=option) from None
    bad = [v for v in items if v < minimum]
    if bad or not items:
        raise click.BadParameter(f"{value!r}: every value must be an integer ≥ {minimum}", param_hint=option)
    return items


def _is_bench_report(path: Path) -> bool:
    try:
        return "sertk_bench" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _check_json_target(path: Path | None, overwrite: bool) -> None:
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--json {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it, or choose another --json")
    if path.exists() and not _is_bench_report(path):
        raise ConfigError(f"{path} is not a report written by sertk bench, so --overwrite does not replace it")
    if not path.parent.is_dir():
        raise ConfigError(f"--json {path}: the folder {path.parent} does not exist")


@click.command("bench")
@click.option("-f", "--featurizer", "featurizer_name", default="imagebind", show_default=True, metavar="NAME",
              help="Featurizer to time (see `sertk list`); `none` times only the ν-SVM.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Weights file; shorthand for -o weights=FILE.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Featurizer option (e.g. -o device=cuda); VALUE is a TOML literal or a string. Repeatable.")
@click.option("--files", "files_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Time your own audio files (every audio file under DIR) instead of synthetic ones.")
@click.option("--n-files", type=click.IntRange(min=1), default=None,
              help="How many files: synthetic speech-like ones at IEMOCAP's duration spread (default: 32 on the "
                   "CPU, 2048 on a GPU), or with --files the first N of yours.")
@click.option("--batch-size", "batch_sizes", default=None, metavar="N[,N...]",
              help="Files per featurizer call (default: the featurizer's own); a list times each.")
@click.option("--workers", "workers", default=None, metavar="N[,N...]",
              help="Decoding worker threads (featurizer option num_workers); a list times each.")
@click.option("--dtype", "dtypes", default=None, metavar="D[,D...]",
              help="Featurizer option dtype (float32, bfloat16, ...); a list times each.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed rounds per setting, each into a fresh cache; the median is reported.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default: torch's).")
@click.option("--matmul-size", type=click.IntRange(min=16), default=None,
              help="Size of the reference matrix product (default: 8192 on a GPU, 2048 on the CPU).")
@click.option("--svm-sizes", default="1000", show_default=True, metavar="N[,N...]|none",
              help="ν-SVM training sizes to time (1024-d embedding-like data; predicts a quarter as many).")
@click.option("--svm-rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Rounds per ν-SVM size (median reported).")
@click.option("--reference", is_flag=True, help="Time scikit-learn's NuSVC too, interleaved with sertk's.")
@click.option("--json", "json_path", type=click.Path(dir_okay=True, path_type=Path), default=None,
              help="Write the report (machine, settings, every round) to FILE, atomically.")
@click.option("--overwrite", is_flag=True, help="Replace --json FILE if it is an earlier sertk bench report.")
@click.option("--scratch", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder for the synthetic files and the caches (default: the system's temporary folder).")
def command(featurizer_name: str, weights: str | None, options: tuple[str, ...], files_dir: Path | None,
            n_files: int | None, batch_sizes: str | None, workers: str | None, dtypes: str | None, rounds: int,
            threads: int | None, matmul_size: int | None, svm_sizes: str, svm_rounds: int, reference: bool,
            json_path: Path | None, overwrite: bool, scratch: Path | None) -> None:
    """Time featurization (files → cached embeddings) and the ν-SVM on this machine."""
    from sertk import bench
    from sertk.machine import describe, machine_info
    from sertk.options import parse_assignments

    sizes: list[int | None] = [*(_int_list(batch_sizes, "--batch-size", 1) or ())] or [None]
    worker_counts: list[int | None] = [*(_int_list(workers, "--workers", 0) or ())] or [None]
    dtype_list: list[str | None] = [*([d.strip() for d in dtypes.split(",") if d.strip()] if dtypes else [None])]
    svm_list = _int_list(svm_sizes, "--svm-sizes", 10) or []
    _check_json_target(json_path, overwrite)
    featurizer_options = parse_assignments(options)
    if weights is not None:
        if "weights" in featurizer_options:
            raise ConfigError("give the weights once: --weights or -o weights=..., not both")
        featurizer_options["weights"] = weights
    for option, given in (("num_workers", workers), ("dtype", dtypes)):
        if given and option in featurizer_options:
            raise ConfigError(f"give {option} once: -o {option}=... or its own option, not both")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    report: dict[str, Any] = {"sertk_bench": REPORT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "argv": sys.argv[1:]}
    if featurizer_name != "none":
        report["featurizer"], ceilings = _time_featurizer(
            featurizer_name, featurizer_options, files_dir, n_files, sizes, worker_counts, dtype_list, rounds,
            scratch, matmul_size)
        report.update(ceilings)
    if svm_list:
        report["svm"] = [t.as_dict() for t in bench.svm_timings(svm_list, reference=reference, rounds=svm_rounds)]
    report["machine"] = machine_info(torch="torch" in sys.modules)
    report["machine_line"] = describe(report["machine"])
    click.echo(bench.format_report(report))
    if json_path is not None:
        bench.write_report(report, json_path)
        click.echo(f"wrote {json_path}", err=True)


def _time_featurizer(name: str, options: dict[str, Any], files_dir: Path | None, n_files: int | None,
                     sizes: list, worker_counts: list, dtype_list: list, rounds: int, scratch: Path | None,
                     matmul_size: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    from sertk import bench
    from sertk.plugins import get_component, instantiate

    component = get_component("featurizer", name)
    runs = []
    device = "cpu"
    with tempfile.TemporaryDirectory(prefix="sertk-bench-files-", dir=scratch) as tmp:
        files: list[Path] | None = None
        corpus = ""
        for workers, dtype in itertools.product(worker_counts, dtype_list):
            settings = dict(options)
            if workers is not None:
                settings["num_workers"] = workers
            if dtype is not None:
                settings["dtype"] = dtype
            featurizer = instantiate(component, settings)
            try:
                torch_device = getattr(featurizer, "torch_device", None)
                device = str(torch_device()) if callable(torch_device) else "cpu"
                if files is None:
                    files, corpus = _corpus(files_dir, n_files, device, Path(tmp))
                for size in sizes:
                    chosen = {"num_workers": getattr(featurizer, "num_workers", None),
                              "dtype": getattr(featurizer, "dtype", None)}
                    result = bench.featurizer_throughput(featurizer, files, rounds=rounds, batch_size=size,
                                                         settings={k: v for k, v in chosen.items() if v is not None},
                                                         scratch=scratch)
                    runs.append(result.as_dict())
            finally:
                close = getattr(featurizer, "close", None)
                if callable(close):
                    close()
    dtypes_run = sorted({r["settings"]["dtype"] for r in runs if isinstance(r["settings"].get("dtype"), str)})
    ceilings: dict[str, Any] = {}
    if dtypes_run:
        ceilings["matmul"] = {d: bench.matmul_tflops(device, d, matmul_size) for d in dtypes_run}
        ceilings["matmul_size"] = matmul_size or (8192 if device.startswith("cuda") else 2048)
    return {"name": name, "options": {k: v for k, v in options.items()}, "device": device,
            "files": len(files or []), "corpus": corpus, "rounds": rounds, "runs": runs}, ceilings


def _corpus(files_dir: Path | None, n_files: int | None, device: str, tmp: Path) -> tuple[list[Path], str]:
    from sertk import bench

    if files_dir is not None:
        try:
            files = bench.find_audio_files(files_dir)
        except ValueError as exc:
            raise ConfigError(f"--files: {exc}") from None
        return (files[:n_files] if n_files else files), f"files under {files_dir}"
    n = n_files or (2048 if device.startswith("cuda") else 32)
    files = bench.write_corpus(tmp / "audio", n)
    durations = bench.iemocap_durations(n)
    return files, (f"synthetic, IEMOCAP spread: mean {durations.mean():.2f} s, {durations.min():.2f}-"
                   f"{durations.max():.2f} s, {len(set(durations))} distinct lengths")
