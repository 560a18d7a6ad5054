"""`wharf render run|once|check`: Consul catalog -> templates -> HAProxy / nginx / any file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from wharf.contracts.marathon_lb import DEFAULT_RETRY_ON, retry_on
from wharf.errors import BadInput, Failure, reaching


def _port(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    text = str(value).rpartition(":")[2]
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadInput(f"{name}: {value!r} is not a port (PORT or HOST:PORT)")
    return int(text)


def _retry_on(value: str) -> str:
    try:
        return retry_on(value)
    except ValueError as exc:
        raise BadInput(f"--retry-on: {value!r} {exc}") from None


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--template", "templates", multiple=True, required=True, metavar="haproxy|nginx|PATH",
                     help="Template: built-in haproxy or nginx, or a Jinja file (repeat, each with a --dest)"),
        click.option("--dest", "dests", multiple=True, required=True, metavar="FILE",
                     help="Where the --template before it goes (one per --template, in order)"),
        click.option("--group", "groups", multiple=True, metavar="G",
                     help="Only routes whose HAPROXY_GROUP is G (repeatable; '*' for all), as marathon-lb"),
        click.option("--bind", default="127.0.0.1", show_default=True, help="Address the frontends bind"),
        click.option("--http-port", envvar="WHARF_HAPROXY_HTTP", default=None, metavar="[HOST:]PORT",
                     help="Port of the shared marathon_http_in frontend [env WHARF_HAPROXY_HTTP; default 80]"),
        click.option("--stats-port", type=int, default=None, help="Serve HAProxy's stats page on this port"),
        click.option("--haproxy-socket", envvar="WHARF_HAPROXY_SOCKET", default=None, metavar="PATH",
                     help="HAProxy admin socket (Runtime API) [env WHARF_HAPROXY_SOCKET]"),
        click.option("--haproxy-master-socket", envvar="WHARF_HAPROXY_MASTER_SOCKET", default=None,
                     metavar="PATH", help="HAProxy master socket, for reloads [env WHARF_HAPROXY_MASTER_SOCKET]"),
        click.option("--server-state-file", default=None, metavar="PATH",
                     help="HAProxy server-state file [default: haproxy.state beside the HAProxy --dest]"),
        click.option("--nginx-port", envvar="WHARF_NGINX_HTTP", default=None, metavar="[HOST:]PORT",
                     help="Port nginx's servers listen on [env WHARF_NGINX_HTTP; default 80]"),
        click.option("--nginx-prefix", envvar="WHARF_NGINX_PREFIX", default=None, metavar="DIR",
                     help="nginx's prefix (-p) for nginx -t and -s reload [env WHARF_NGINX_PREFIX]"),
        click.option("--exec", "exec_command", default=None, metavar="CMD",
                     help="Run CMD (through the shell) after a write changes a file"),
        click.option("--retry-on", default=DEFAULT_RETRY_ON, show_default=True, metavar="KEYWORDS|none",
                     help="What HAProxy retries on another server (its retry-on keywords; none: only "
                          "connection retries to the same server); a HAPROXY_{n}_RETRY_ON label wins"),
        click.option("--passive-health", is_flag=True,
                     help="Mark a slot's server down on its first connection error, with a TCP check to bring "
                          "it back (HAProxy keeps a socket for each checked server: see the README)"),
        click.option("--kv-prefix", "kv_prefixes", multiple=True, metavar="PREFIX",
                     help="Also watch these Consul KV prefixes; templates see them as `kv`"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _build(loaded: Any, reload: bool, **o: Any) -> Any:
    from consul_templates import apply, passes, render

    if len(o["templates"]) != len(o["dests"]):
        raise BadInput(f"--template and --dest come in pairs: got {len(o['templates'])} templates and "
                       f"{len(o['dests'])} destinations")
    loaded_templates = [render.load_template(spec) for spec in o["templates"]]
    dests = [Path(d).expanduser() for d in o["dests"]]
    haproxy_dest = next((d for t, d in zip(loaded_templates, dests, strict=True) if t.kind == "haproxy"), None)
    base = (haproxy_dest or dests[0]).resolve().parent
    admin = o["haproxy_socket"] or str(base / "haproxy.sock")
    state_file = o["server_state_file"] or str(base / "haproxy.state")
    settings = render.RenderSettings(
        bind=o["bind"], http_port=_port(o["http_port"], "--http-port", 80), stats_port=o["stats_port"],
        admin_socket=admin, state_file=state_file, nginx_port=_port(o["nginx_port"], "--nginx-port", 80),
        groups=tuple(o["groups"]), retry_on=_retry_on(o["retry_on"]), passive_health=o["passive_health"],
    )
    targets = [passes.Target(t, d, passes.validator_for(t.kind, o["nginx_prefix"]))
               for t, d in zip(loaded_templates, dests, strict=True)]
    control = None
    if haproxy_dest is not None and o["haproxy_socket"]:
        control = apply.HAProxyControl(admin, o["haproxy_master_socket"], state_file)
    return passes.Renderer(targets, settings, control, o["nginx_prefix"], o["exec_command"], reload)


def _reader(loaded: Any) -> Any:
    from wharf.consul_http import Reader

    with reaching("Consul", loaded["consul_http_addr"]):
        return Reader(loaded["consul_http_addr"], loaded["consul_http_token"], loaded["consul_cacert"])


@click.group("render")
def render_group() -> None:
    """Render the Consul catalog into HAProxy, nginx or any config through Jinja templates."""


@render_group.command("run")
@_options
@click.option("--wait", "wait_text", default="0:0", show_default=True, metavar="MIN:MAX",
              help="Quiescence: render once the catalog is quiet for MIN, at most MAX after a change")
@click.option("--recover-grace", type=float, default=30.0, show_default=True, metavar="SECONDS",
              help="After Consul comes back (restarted empty), keep instances it lacks this long")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT")
@click.pass_obj
def run_cmd(loaded: Any, wait_text: str, recover_grace: float, metrics_port: int | None, **o: Any) -> None:
    """Watch Consul and keep the files (and the load balancers) in step with it, until SIGTERM."""
    from consul_templates.daemon import RenderDaemon
    from consul_templates.quiescence import parse_wait

    try:
        wait = parse_wait(wait_text)
    except ValueError as exc:
        raise BadInput(f"--wait: {exc}") from None
    renderer = _build(loaded, True, **o)
    daemon = RenderDaemon(renderer, _reader(loaded), o["kv_prefixes"], wait, recover_grace, metrics_port)
    raise SystemExit(daemon.run(loaded))


def _read(loaded: Any, kv_prefixes: tuple[str, ...]) -> Any:
    from consul_templates.snapshot import Snapshot
    from consul_templates.watch import fetch_catalog

    reader = _reader(loaded)
    with reaching("Consul", loaded["consul_http_addr"]):
        return Snapshot.from_catalog(*fetch_catalog(reader, kv_prefixes))


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*rows[0].keys(), box=None) if rows else Table("dest")
    for row in rows:
        table.add_row(*("" if v is None else ", ".join(v) if isinstance(v, list) else str(v) for v in row.values()))
    Console().print(table)


@render_group.command("once")
@_options
@click.option("--no-reload", is_flag=True, help="Write the files only: no reload, no Runtime API, no --exec")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_obj
def once_cmd(loaded: Any, no_reload: bool, as_json: bool, **o: Any) -> None:
    """Render every template once from the current catalog, write what changed, apply it, exit."""
    from consul_templates.snapshot import paused_gc

    renderer = _build(loaded, not no_reload, **o)
    with paused_gc():  # one pass, as the daemon's
        outcomes = renderer.apply(_read(loaded, o["kv_prefixes"]))
    rows = [{"dest": x.dest, "changed": x.changed, "action": x.action, "error": x.error,
             "excluded": list(x.excluded)} for x in outcomes]
    _print(rows, as_json)
    failed = [x for x in outcomes if x.action == "failed"]
    if failed:
        raise Failure(f"{failed[0].dest}: {failed[0].error}")


@render_group.command("check")
@_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_obj
def check_cmd(loaded: Any, as_json: bool, **o: Any) -> None:
    """Render every template from the current catalog and validate it; change nothing."""
    from consul_templates import render, safe, writer

    renderer = _build(loaded, False, **o)
    snapshot, _ = safe.clean(_read(loaded, o["kv_prefixes"]))
    rows, first_error = [], None
    for target in renderer.targets:
        error = None
        try:
            rendered = render.render(target.template, snapshot, renderer.settings)
            directory = target.dest.resolve().parent if target.dest.resolve().parent.is_dir() else Path(".")
            writer.check(rendered.text, directory, target.dest.name, target.validate)
            current = target.dest.read_bytes() if target.dest.is_file() else None
            state = "unchanged" if current == rendered.text.encode() else "would change"
        except (render.RenderError, writer.ValidationFailed) as exc:
            state, error = "invalid", str(exc)
            first_error = first_error or f"{target.dest}: {exc}"
        rows.append({"template": target.template.spec, "dest": str(target.dest), "state": state, "error": error})
    _print(rows, as_json)
    if first_error:
        raise Failure(first_error)
