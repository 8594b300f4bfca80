"""``sertk predict``: the emotion of new recordings, with a model saved by ``sertk run``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file on stdout (JSON lines).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Where the featurizer's weights are now, if they moved (their digest must still match).")
@click.option("--device", help="Featurizer device (cpu, cuda, …), if the featurizer has that option.")
@click.option("--cache/--no-cache", default=True, help="Use the embedding cache.  [default: on]")
@click.option("--one-speaker", is_flag=True,
              help="FILES are recordings of one speaker (at least 2): a model trained with --normalize speaker "
                   "normalises them with their own statistics (unlabelled), as sertk run did for test speakers.")
def command(model_dir: Path, files: tuple[Path, ...], as_json: bool, weights: Path | None, device: str | None,
            cache: bool, one_speaker: bool) -> None:
    """Predict the emotion of FILES with the model in MODEL_DIR (a run's `model` folder).

    Prints, per file, the predicted emotion and a score per class: probabilities when the classifier was trained
    with them, otherwise one-vs-rest decision values. Refuses a model whose featurizer fingerprint does not match
    the featurizer built now. A model trained with per-speaker normalisation needs --one-speaker and several
    recordings of that speaker.
    """
    import json

    import numpy as np

    from sertk.experiment.model import load_model
    from sertk.featurization.cache import EmbeddingCache
    from sertk.featurization.embed import embed_paths

    model = load_model(model_dir)
    model.check_input(len(files), one_speaker=one_speaker)  # before any embedding
    if one_speaker and model.normalize != "speaker":
        click.echo(f"note: --one-speaker changes nothing: this model was trained with {model.normalize!r} "
                   f"normalisation, which needs no speaker statistics", err=True)
    overrides = {}
    if weights is not None:
        overrides["weights"] = str(weights)
    if device is not None:
        overrides["device"] = device
    featurizer = model.build_featurizer(**overrides)
    store = EmbeddingCache() if cache else None
    try:
        result = embed_paths(featurizer, list(files), cache=store, desc="embedding")
    finally:
        if store is not None:
            store.close()
    if len(result.embeddings):
        predicted, scores, kind = model.scores(result.embeddings, one_speaker=one_speaker)
    else:  # every file failed: only errors to print
        predicted, scores, kind = np.empty(0, dtype=str), np.empty((0, len(model.labels))), ""
    rows = iter(range(len(predicted)))
    for index, path in enumerate(files):
        if not result.ok[index]:
            message = f"cannot embed {path}: {result.failures[index]}"  # as sertk embed: unreadable or non-finite
            if as_json:
                click.echo(json.dumps({"path": str(path), "error": message}))
            else:
                click.echo(f"{path}\terror: {message}", err=True)
            continue
        row = next(rows)
        per_class = {label: round(float(v), 6) for label, v in zip(model.labels, scores[row])}
        if as_json:
            click.echo(json.dumps({"path": str(path), "emotion": predicted[row], "score_kind": kind,
                                   "scores": per_class}))
        else:
            shown = "  ".join(f"{label} {value:+.3f}" for label, value in per_class.items())
            click.echo(f"{path}\t{predicted[row]}\t({kind}: {shown})")
    if result.failures:
        raise SystemExit(1)
