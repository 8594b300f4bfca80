"""``sertk weights``: download Meta's ImageBind checkpoint, extract its audio weights, inspect a file.

Added to the ``sertk`` command line by the imagebind plugin (hook ``sertk_register_commands``).
"""

from __future__ import annotations

import json

import click

from sertk_plugins.featurizers.imagebind import weights as W


@click.group("weights")
def weights_group() -> None:
    """Get and inspect ImageBind weights (Meta's, licensed CC BY-NC 4.0: non-commercial use only)."""


@weights_group.command("download")
@click.option("--url", default=W.URL, show_default=True, help="Where to fetch imagebind_huge.pth from.")
@click.option("--out", "dest", type=click.Path(dir_okay=False), default=None,
              help="Destination file [default: $SERTK_HOME/weights/imagebind_huge.pth].")
@click.option("--sha256", default=None, help="Expected sha256; a mismatch removes the file.")
@click.option("--extract/--no-extract", default=False,
              help="Also write the audio-only safetensors file next to it (345 MB).")
def download_cmd(url: str, dest: str | None, sha256: str | None, extract: bool) -> None:
    """Download imagebind_huge.pth (4.8 GB), resuming a partial download."""
    path = W.download(url, dest, sha256=sha256)
    click.echo(str(path))
    if extract:
        click.echo(str(W.extract_audio(path, path.with_name(W.AUDIO_NAME))))


@weights_group.command("extract-audio")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False), required=False)
def extract_cmd(checkpoint: str, out: str | None) -> None:
    """Write the 177 audio tensors of CHECKPOINT to OUT (safetensors) [default: $SERTK_HOME/weights/...]."""
    click.echo(str(W.extract_audio(checkpoint, out or W.weights_dir() / W.AUDIO_NAME)))


@weights_group.command("info")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def info_cmd(file: str, as_json: bool) -> None:
    """Say what a weights file holds."""
    d = W.describe(file)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"{d['path']}: {d['format']}, {d['size_bytes'] / 1e6:.1f} MB, {d['tensors']} tensors, "
               f"{d['parameters']:,} values ({', '.join(d['dtypes'])})")
    click.echo("  modalities: " + ", ".join(f"{k} ({n} tensors)" for k, n in d["modalities"].items()))
    if d["audio_complete"]:
        click.echo(f"  ImageBind audio weights: complete (177 tensors, {d['audio_parameters']:,} values); "
                   "usable as -o weights=" + d["path"])
    else:
        click.echo("  ImageBind audio weights: incomplete or absent; not usable by the imagebind featurizer")
    for k, v in d["metadata"].items():
        click.echo(f"  {k}: {v}")
