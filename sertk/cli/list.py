"""``sertk list``: every dataset, featurizer, classifier and protocol, with the plugin that provides it."""

from __future__ import annotations

import click


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(as_json: bool) -> None:
    """List the registered components and the plugins (and package versions) that provide them."""
    import json

    from sertk.extras import install_hint, missing_extra
    from sertk.plugins import KINDS, get_host
    from sertk.protocols import kind_of

    host = get_host()
    rows = []
    for kind in KINDS:
        for component in host.registries[kind]:
            plugin = component.plugin
            description = component.description
            if kind == "protocol":  # numbers from the two kinds are not comparable: say which it is
                description = f"[{kind_of(component.cls)}] {description}"
            extra = missing_extra(component.cls)  # an optional package it needs is not installed
            rows.append({"kind": kind, "name": component.name, "plugin": plugin.name, "package": plugin.package,
                         "version": plugin.version, "builtin": plugin.builtin, "description": description,
                         "install": install_hint(extra) if extra else None})
    broken = [{"name": b.name, "package": b.package, "error": b.error} for b in host.broken]
    executors = _executors()
    if as_json:
        click.echo(json.dumps({"components": rows, "executors": executors, "broken_plugins": broken}, indent=2))
        return
    for kind in KINDS:
        click.secho(f"{kind}s:", bold=True)
        for row in (r for r in rows if r["kind"] == kind):
            version = f" {row['version']}" if row["version"] else ""
            source = f"{row['plugin']} ({row['package']}{version})"
            click.echo(f"  {row['name']:<16} {source}")
            if row["description"]:
                click.echo(f"  {'':<16} {row['description']}")
            if row["install"]:
                click.echo(f"  {'':<16} not installed: {row['install']}")
    click.secho("executors:", bold=True)
    for row in executors:
        click.echo(f"  {row['name']:<16} {row['description']}" + (f" ({row['package']})" if row["package"] else ""))
        if row["install"]:
            click.echo(f"  {'':<16} not installed: {row['install']}")
    for b in broken:
        click.secho(f"plugin {b['name']!r} ({b['package']}) failed to load: {b['error']}", fg="red", err=True)


def _executors() -> list[dict]:
    """Where featurization can run (``--executor``), and whether the package each needs is installed (found, not
    imported: ``sertk list`` imports no Ray)."""
    import importlib.metadata

    from sertk.executors import EXECUTORS
    from sertk.extras import install_hint, is_installed

    rows = []
    for name, description in EXECUTORS.items():
        extra = name if name != "local" else None
        installed = extra is None or is_installed(extra)
        package = None
        if extra is not None and installed:
            try:
                package = f"{extra} {importlib.metadata.version(extra)}"
            except importlib.metadata.PackageNotFoundError:
                package = extra
        rows.append({"name": name, "description": description, "installed": installed, "package": package,
                     "install": None if installed else install_hint(extra or "")})
    return rows
