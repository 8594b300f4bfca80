"""``sertk sweep SWEEP.toml``: many runs from one file, then their comparison (see :mod:`sertk.experiment.sweep`)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("sweep")
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Sweep folder (new, empty, or an earlier run of a sweep, which is resumed).  "
                   "[default: the file's [sweep] out, else sweeps/<file name>]")
@click.option("-j", "--jobs", type=click.IntRange(min=1),
              help="Runs at a time in the local pool; 1 runs them one after the other in this process.  "
                   "[default: the usable cores]")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the runs go: a local process pool, or a Ray cluster.")
@click.option("--ray-address", help="Ray cluster to join (with --executor ray).  [default: RAY_ADDRESS, else a new "
                                    "local cluster]")
@click.option("--dry-run", is_flag=True, help="List the runs and whether each is finished; run nothing.")
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv", "json"]), default="markdown",
              show_default=True, help="Format of the comparison printed at the end.")
def command(sweep_file, out, jobs, executor, ray_address, dry_run, fmt):
    """Run a sweep: the base configuration in SWEEP_FILE for every combination of its [axes], each run in its
    own folder, then print the comparison table (also written to the sweep folder).

    A sweep that was stopped resumes: finished runs are skipped, the others redone. Exits with status 1 when
    any run failed (the others still run).
    """
    from sertk.atomic import atomic_write_text
    from sertk.errors import ConfigError
    from sertk.experiment.compare import compare, load_runs, render
    from sertk.experiment.sweep import finished_report, load_sweep, run_sweep

    if ray_address and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    plan = load_sweep(sweep_file, out=out)
    if dry_run:
        for run in plan.runs:
            state = "finished" if finished_report(run.folder, run.config) is not None else "to run"
            click.echo(f"{state:9s} {run.folder}")
        click.echo(f"{len(plan.runs)} run(s) in {plan.folder}")
        return
    click.echo(f"sweep {sweep_file}: {len(plan.runs)} run(s) into {plan.folder}", err=True)

    def on_event(event):
        if event.kind == "embedded":
            d = event.detail
            if "error" in d:
                click.echo(f"embedding {d['dataset']} with {d['featurizer']} failed: {d['error']}", err=True)
            else:
                click.echo(f"embeddings {d['dataset']} · {d['featurizer']}: {d['n_computed']} computed, "
                           f"{d['n_cached']} from the cache, {d['n_failed']} failed", err=True)
            return
        o = event.outcome
        if event.kind == "skipped":
            click.echo(f"[finished earlier] {o.name}", err=True)
            return
        head = f"[{event.done} done, {event.left} left]"
        if event.kind == "failed":
            click.echo(f"{head} FAILED {o.name}: {o.error}", err=True)
        else:
            m = o.metrics
            click.echo(f"{head} {o.name}: WA {100 * m['accuracy']:.2f} %  UA {100 * m['unweighted_accuracy']:.2f} %"
                       f"  macro-F1 {100 * m['macro_f1']:.2f} %  ({o.seconds:.1f} s)", err=True)

    result = run_sweep(plan, jobs=jobs, executor=executor, ray_address=ray_address, on_event=on_event)
    folders = result.finished_folders
    if folders:
        comparison = compare(load_runs(folders))
        for name, kind in (("comparison.md", "markdown"), ("comparison.csv", "csv"), ("comparison.json", "json")):
            atomic_write_text(plan.folder / name, render(comparison, kind))
        click.echo(render(comparison, fmt), nl=False)
    failed = result.failed
    ok = len(plan.runs) - len(failed)
    click.echo(f"{ok} of {len(plan.runs)} run(s) finished; manifest: {plan.folder / 'sweep.json'}", err=True)
    if failed:
        click.echo(f"{len(failed)} run(s) failed:", err=True)
        for o in failed:
            click.echo(f"  {o.name}: {o.error}", err=True)
        raise SystemExit(1)
