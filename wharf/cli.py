"""The `wharf` command: one click group; each room contributes its own subgroup."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from autoscale.cli import autoscale
from chronos_jobs.cli import jobs
from consul_templates.cli import render_group
from devcluster.cli import dev
from framework.cli import framework
from marathon_apps.cli import apps
from registrator.cli import registrator
from wharf import __version__, log, settings


def _setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per setting that has a flag, declared once in `settings.SETTINGS`."""
    for s in reversed(settings.SETTINGS):
        if s.flag:
            env = f" [env {s.env}]" if s.env else ""
            func = click.option(s.flag, s.name, default=None, help=s.help + env)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wharf")
@click.option("--config", "config_file", default=None, metavar="PATH",
              help="Settings file [env WHARF_CONFIG; default ./wharf.yaml if present]")
@_setting_options
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, **flags: Any) -> None:
    """Deploy, register, route and scale containers on Mesos from a git repository."""
    path = settings.find_config_file(config_file, os.environ)
    ctx.obj = loaded = settings.load(flags, os.environ, path)
    log.setup(loaded["log_format"], loaded["log_level"], secrets=loaded.secrets())


@cli.group()
def config() -> None:
    """Inspect wharf's settings."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_obj
def config_show(loaded: settings.Settings, as_json: bool) -> None:
    """Print every effective setting and where it came from (flag, env, file, default)."""
    rows = {
        s.name: {"value": loaded.shown(s.name), "source": loaded.values[s.name].source, "env": s.env}
        for s in settings.SETTINGS
    }
    if as_json:
        click.echo(json.dumps({"config_file": loaded.config_file, "settings": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("setting", "value", "source", "env", box=None)
    for name, row in rows.items():
        table.add_row(name, "" if row["value"] is None else str(row["value"]), row["source"], row["env"] or "")
    Console().print(table)
    if loaded.config_file:
        click.echo(f"config file: {loaded.config_file}")


cli.add_command(dev)
cli.add_command(registrator)
cli.add_command(apps)
cli.add_command(jobs)
cli.add_command(render_group)
cli.add_command(autoscale)
cli.add_command(framework)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="wharf")
