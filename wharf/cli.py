"""The `wharf` command: one click group; each room contributes its own subgroup."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import click

from wharf import __version__, log, settings
from wharf.errors import WharfError

#: the entry-point group in which each room names its command group (setup.cfg)
COMMANDS_GROUP = "wharf.commands"


@cache
def rooms() -> dict[str, EntryPoint]:
    """Each room's command group by name, as installed; loaded only when asked for: `wharf render
    once` then imports the renderer alone, not ZooKeeper's, Docker's and Marathon's clients as well."""
    return {ep.name: ep for ep in entry_points(group=COMMANDS_GROUP)}


class Shown(click.ClickException):
    """A `WharfError` at the CLI's edge: click prints `Error: <message>` and exits with its code."""

    def __init__(self, error: WharfError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code  # type: ignore[misc]  # click reads it per instance


class RoomsGroup(click.Group):
    """A group whose room subgroups come from the `wharf.commands` entry points, loaded on first use;
    the one place where wharf's errors become click's."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WharfError as error:
            raise Shown(error) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *rooms()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in rooms() and cmd_name not in self.commands:
            self.add_command(rooms()[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)


def _setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per setting that has a flag, declared once in `settings.SETTINGS`."""
    for s in reversed(settings.SETTINGS):
        if s.flag:
            env = f" [env {s.env}]" if s.env else ""
            func = click.option(s.flag, s.name, default=None, help=s.help + env)(func)
    return func


@click.group(cls=RoomsGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="wharf")
