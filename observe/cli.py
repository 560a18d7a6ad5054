"""`wharf trace`: one app through every link of the pipeline, naming the first that does not hold."""

from __future__ import annotations

import json
import logging
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
    from observe.links import app_ids
    from observe.links import trace as trace_app
    from wharf.contracts.marathon_app import InvalidAppId, parse_app_id

    if every == bool(app_id):
        raise BadInput("APP: give one app, or --all")
    try:
        wanted = parse_app_id(app_id) if app_id else None
    except InvalidAppId as exc:
        raise BadInput(f"APP: {exc}") from None
    view = _reader(ctx, haproxies, config)[0]()
    traces = [trace_app(view, a) for a in (app_ids(view) if every else [str(wanted)])]
    if as_json:
        body: Any = {"apps": [t.to_json() for t in traces]} if every else traces[0].to_json()
        click.echo(json.dumps(body, indent=2))
    elif every:
        _table(traces)
    else:
        _chain(traces[0])
    ctx.exit(1 if any(t.broken for t in traces) else 0)


def _reader(ctx: click.Context, haproxies: tuple[str, ...], config: Path | None,
            connect_for: float | None = None) -> tuple[Any, Any, Any]:
    """`read()` of the whole pipeline with the settings every room uses; and the Marathon client and
    Consul reader it reads through. `connect_for`: seconds to keep trying to connect to Marathon
    (None: the clients' default)."""
    from dataclasses import replace

    from observe.gather import read_view
    from wharf.consul_http import Reader
    from wharf.haproxy import StatsSource
    from wharf.http import CONNECT_RETRY
    from wharf.marathon import MarathonClient

    settings = ctx.find_root().obj
    if not settings["marathon_url"]:
        raise BadInput("MARATHON_URL: not set (or give --marathon-url)")
    sources = [StatsSource.parse(h) for h in haproxies]
    retry = CONNECT_RETRY if connect_for is None else replace(CONNECT_RETRY, deadline=connect_for)
    marathon = MarathonClient(settings["marathon_url"], timeout=5, retry=retry)
    consul = Reader(settings["consul_http_addr"], settings["consul_http_token"], settings["consul_cacert"], timeout=5)
    return (lambda: read_view(marathon, consul.client(), sources, config)), marathon, consul


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


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets); PORT 0 takes a free one."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadInput(f"--listen: {text!r} is not HOST:PORT (port 0-65535)")
    return host, int(port)


@click.command()
@click.option("--listen", "address", default="127.0.0.1:8095", show_default=True, metavar="HOST:PORT",
              help="Where to serve the page (port 0: a free one); anything but loopback shows every app to "
                   "whoever reaches it")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between two reads of Marathon and HAProxy (Consul's changes are read at once)")
@click.option("--haproxy", "haproxies", multiple=True, envvar="WHARF_HAPROXY_SOCKET", metavar="URL|SOCKET",
              help="HAProxy to read (stats page URL or admin socket; repeatable) [env WHARF_HAPROXY_SOCKET]")
@click.option("--haproxy-config", "config", type=click.Path(dir_okay=False, path_type=Path),
              envvar="WHARF_HAPROXY_CONFIG", default=None,
              help="The config file `wharf render run` writes for it [env WHARF_HAPROXY_CONFIG]")
@click.pass_context
def ui(ctx: click.Context, address: str, interval: float, haproxies: tuple[str, ...], config: Path | None) -> None:
    """Serve a live, read-only web view of every app's pipeline (the links of `wharf trace`)."""
    try:
        from observe.ui import Live, consul_watches, listen, serve
    except ImportError as exc:
        raise BadInput(f"wharf ui needs its extra: pip install 'wharf[ui]' ({exc})") from None
    from observe.gather import deploys
    from wharf.announce import announce
    from wharf.consul_http import is_loopback
    from wharf.errors import Failure

    host, port = parse_listen(address)
    read, marathon, consul = _reader(ctx, haproxies, config, connect_for=2.0)  # the view retries on its own
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise Failure(f"--listen {address}: {exc.strerror or exc}") from None
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"wharf ui: http://{shown_host}:{sock.getsockname()[1]}/", nl=True)
    if not is_loopback(host):
        click.echo(f"wharf ui: listening on {host}, beyond loopback: the page has no login", err=True)
    live = Live(read, interval, lambda ids: deploys(marathon, ids))
    # its /metrics registered in Consul as every daemon's are, for Prometheus to find
    announcer = announce("ui", "127.0.0.1" if host in ("0.0.0.0", "::") else host, sock.getsockname()[1],
                         ctx.find_root().obj, logging.getLogger("wharf.ui"))
    try:
        serve(live, sock, consul_watches(consul, live.poke))
    finally:
        announcer.stop()
