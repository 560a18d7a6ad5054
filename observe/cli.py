"""`wharf trace`: one app through every link of the pipeline, naming the first that does not hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from wharf.errors import BadInput

STATE_COLOURS = {"ok": "green", "warn": "yellow", "broken": "red", "none": None}


@click.command()
@click.argument("app_id", metavar="APP", required=False)
@click.option("--all", "every", is_flag=True, help="Every app, one line each")
@click.option("--haproxy", "haproxies", multiple=True, envvar="WHARF_HAPROXY_SOCKET", metavar="URL|SOCKET",
              help="HAProxy to read (stats page URL or admin socket; repeatable) [env WHARF_HAPROXY_SOCKET]")
@click.option("--haproxy-config", "config", type=click.Path(dir_okay=False, path_type=Path),
              envvar="WHARF_HAPROXY_CONFIG", default=None,
              help="The config file `wharf render run` writes for it [env WHARF_HAPROXY_CONFIG]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def trace(ctx: click.Context, app_id: str | None, every: bool, haproxies: tuple[str, ...], config: Path | None,
          as_json: bool) -> None:
    """Follow APP from the config repository through Marathon, its tasks, Consul and HAProxy to the
    autoscaler; exit 1 naming the first link that does not hold, with what to check."""
    from observe.gather import read_view
    from observe.links import app_ids
    from observe.links import trace as trace_app
    from wharf.consul_http import client
    from wharf.contracts.marathon_app import InvalidAppId, parse_app_id
    from wharf.haproxy import StatsSource
    from wharf.marathon import MarathonClient

    if every == bool(app_id):
        raise BadInput("APP: give one app, or --all")
    settings = ctx.find_root().obj
    if not settings["marathon_url"]:
        raise BadInput("MARATHON_URL: not set (or give --marathon-url)")
    try:
        wanted = parse_app_id(app_id) if app_id else None
    except InvalidAppId as exc:
        raise BadInput(f"APP: {exc}") from None
    view = read_view(MarathonClient(settings["marathon_url"], timeout=5),
                     client(settings["consul_http_addr"], settings["consul_http_token"], settings["consul_cacert"],
                            timeout=5),
                     [StatsSource.parse(h) for h in haproxies], config)
    traces = [trace_app(view, a) for a in (app_ids(view) if every else [str(wanted)])]
    if as_json:
        body: Any = {"apps": [t.to_json() for t in traces]} if every else traces[0].to_json()
        click.echo(json.dumps(body, indent=2))
    elif every:
        _table(traces)
    else:
        _chain(traces[0])
    ctx.exit(1 if any(t.broken for t in traces) else 0)


def _chain(found: Any) -> None:
    broken = found.broken
    click.echo(f"{found.app}: " + (f"broken at {broken.name}: {broken.summary}" if broken else "every link holds"))
    for link in found.links:
        state = click.style(f"{link.state:7}", fg=STATE_COLOURS.get(link.state))
        click.echo(f"  {link.name:10} {state} {link.summary}")
        if link.check and link.state != "ok":
            click.echo(f"  {'':10} {'':7} check: {link.check}")


def _table(traces: list[Any]) -> None:
    names = [link.name for link in traces[0].links] if traces else []
    click.echo(f"{'app':30} " + " ".join(f"{n:9}" for n in names) + "  first broken")
    for found in traces:
        cells = " ".join(click.style(f"{link.state:9}", fg=STATE_COLOURS.get(link.state)) for link in found.links)
        broken = found.broken
        click.echo(f"{found.app:30} {cells}  " + (f"{broken.name}: {broken.summary}" if broken else "-"))
