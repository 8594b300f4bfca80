"""``sertk run``: one experiment from a dataset to a report.

Precedence, lowest first: built-in defaults or ``--preset``, ``--config FILE``, the named options,
``-o kind.key=value``.
"""

from __future__ import annotations

from pathlib import Path

import click

from sertk.experiment.config import COMPONENT_KINDS, PRESETS, RunConfig, load_config
from sertk.experiment.config import preset as preset_config
from sertk.experiment.normalize import MODES as NORMALIZE_MODES


@click.command("run")
@click.option("--preset", type=click.Choice(sorted(PRESETS)),
              help="Start from a named configuration: paper (IEMOCAP, imagebind, nusvm nu=0.1, sd-random 80/20) "
                   "or paper-si (the same with leave-one-session-out).")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML run configuration (e.g. a previous run's config.toml).")
@click.option("--dataset", help="Dataset name (see `sertk list`).  [default: demo]")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), help="Folder holding the corpus.")
@click.option("--featurizer", help="Featurizer name.  [default: handcrafted]")
@click.option("--classifier", help="Classifier name.  [default: nusvm with nu=0.1]")
@click.option("--protocol", help="Evaluation protocol (sertk list shows all): sd-random, kfold, loso, loso-speaker, "
                                  "speaker-kfold, group-split.  [default: sd-random]")
@click.option("--seed", type=int, help="Random seed for the split and the classifier.  [default: 0]")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: new or empty (see --overwrite).  [default: runs/<dataset>-<featurizer>-"
                   "<classifier>-<protocol>-seed<seed>, or the config file's `out`; when that is taken, the first "
                   "free NAME-2, NAME-3, …]")
@click.option("--overwrite", is_flag=True,
              help="Write into an output folder that holds an earlier run, replacing only the files sertk wrote "
                   "there (listed in its sertk-run.json); refuses if other files are in the way.")
@click.option("-o", "--option", "assignments", multiple=True, metavar="KIND.KEY=VALUE",
              help="Component option, e.g. -o classifier.nu=0.2 -o protocol.stratify=false (repeatable).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path),
              help="Shorthand for -o featurizer.weights=FILE.")
@click.option("--device", help="Shorthand for -o featurizer.device=DEVICE (cpu, cuda, cuda:1).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Featurizer batch size.")
@click.option("--normalize", type=click.Choice(NORMALIZE_MODES),
              help="Feature normalisation in each fold: none; global (z-score with the training side's statistics); "
                   "speaker (z-score each speaker with its own statistics: test speakers' from their unlabelled "
                   "test features, which the report says).  [default: the featurizer's recommendation]")
@click.option("--standardize/--no-standardize", default=None,
              help="The older spelling of --normalize global / --normalize none.")
@click.option("--cache/--no-cache", default=None, help="Use the embedding cache.  [default: on]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Embedding cache folder.")
@click.option("--skip-bad-audio", is_flag=True, default=None,
              help="Leave out files that cannot be decoded (named in the report) instead of stopping.")
@click.option("--repeats", type=click.IntRange(min=1), help="Repeat the protocol with seeds seed…seed+N-1.")
@click.option("--plots/--no-plots", default=None, help="Draw t-SNE figures.  [default: on]")
@click.option("--save-model/--no-save-model", default=None,
              help="Save the trained pipeline in OUT/model for `sertk predict`.  [default: on]")
@click.option("--executor", type=click.Choice(["local", "ray"]),
              help="Where featurization runs: local (this process) or ray (a Ray cluster; docs/distributed.md).  "
                   "[default: local]")
@click.option("--ray-address", help="Ray cluster to join (with --executor ray).  [default: $RAY_ADDRESS, else a new "
                                    "local cluster on 127.0.0.1]")
@click.option("--workers", type=click.IntRange(min=1),
              help="Ray workers (with --executor ray).  [default: as many as the cluster holds]")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0),
              help="GPUs per Ray worker, fractions share one (with --executor ray).  [default: 1 when the cluster "
                   "has GPUs, else 0]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def command(preset, config_file, dataset, data_root, featurizer, classifier, protocol, seed, out, overwrite,
            assignments, weights, device, batch_size, normalize, standardize, cache, cache_dir, skip_bad_audio,
            repeats, plots, save_model, as_json, executor, ray_address, workers, gpus_per_worker):
    """Run an experiment: load a dataset, embed every utterance, train and evaluate a classifier, and write
    report.json, report.md and confusion_matrix.png to the output folder.

    With no options it runs on the small synthetic demo corpus shipped with sertk.
    """
    import json

    from sertk.experiment.pipeline import run_experiment
    from sertk.options import parse_component_assignments

    config = preset_config(preset) if preset else RunConfig()
    if config_file:
        config.update(load_config(config_file).to_dict(), source=str(config_file))
    overrides: dict = {}
    for kind, name in (("dataset", dataset), ("featurizer", featurizer), ("classifier", classifier),
                       ("protocol", protocol)):
        if name:
            overrides[kind] = {"name": name}
    for key, value in (("seed", seed), ("normalize", normalize), ("standardize", standardize), ("cache", cache),
                       ("batch_size", batch_size), ("skip_bad_audio", skip_bad_audio),
                       ("repeats", repeats), ("plots", plots), ("save_model", save_model)):
        if value is not None:
            overrides[key] = value
    if out is not None:
        overrides["out"] = str(out)
    if cache_dir is not None:
        overrides["cache_dir"] = str(cache_dir)
    for key, value in (("executor", executor), ("ray_address", ray_address), ("workers", workers),
                       ("gpus_per_worker", gpus_per_worker)):
        if value is not None:
            overrides[key] = value
    config.update(overrides, source="command line")
    if data_root is not None:
        config.data_root = str(data_root)
    component_options = parse_component_assignments(list(assignments), kinds=COMPONENT_KINDS)
    if weights is not None:
        component_options.setdefault("featurizer", {})["weights"] = str(weights)
    if device is not None:
        component_options.setdefault("featurizer", {})["device"] = device
    config.update({kind: {"options": opts} for kind, opts in component_options.items()}, source="-o")
    if config.executor != "ray" and (ray_address, workers, gpus_per_worker) != (None, None, None):
        raise click.UsageError("--ray-address, --workers and --gpus-per-worker go with --executor ray")

    # only --out names a folder exactly; a default or a config file's `out` (a saved run's) gives way to a fresh one
    result = run_experiment(config, overwrite=overwrite, fresh_out=out is None)
    report = result.report
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    protocol_info = report["protocol"]
    click.echo(f"{report['dataset']['name']} · {report['featurizer']['name']} · {report['classifier']['name']} · "
               f"{protocol_info['name']} ({protocol_info['kind']}, {protocol_info['n_folds']} fold(s))")
    click.echo(f"WA {100 * report['accuracy']:.2f} %  UA {100 * report['unweighted_accuracy']:.2f} %  "
               f"macro-F1 {100 * report['macro_f1']:.2f} %  on {report['n_test']} test utterances")
    click.echo(f"report: {result.paths['markdown']}")

