"""`wharf dev`: bring the embedded dev cluster up, inspect it, print its environment, take it down."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click


def _cluster(ctx: click.Context) -> Any:
    from devcluster.cluster import Cluster

    return Cluster(ctx.find_root().obj["state_dir"])


def _print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    if not status["services"]:
        click.echo(f"no dev cluster in {status['state_dir']}")
        return
    hidden = {"pid", "running", "healthy", "error", "log"}
    for name, row in status["services"].items():
        state = "healthy" if row["healthy"] else click.style(f"unhealthy: {row['error']}", fg="red")
        click.echo(f"{name:<13} {state}  pid {row['pid'] or '-'}")
        for key, value in row.items():
            if key not in hidden:
                click.echo(f"    {key:<14} {value}")


@click.group()
def dev() -> None:
    """The embedded single-machine dev cluster: real ZooKeeper, HAProxy, nginx, Docker, Consul and
    Prometheus; stand-ins for Mesos, Marathon and Chronos."""


@dev.command()
@click.option("--zk-port", type=int, help="ZooKeeper client port [default: a free one]")
@click.option("--haproxy-port", type=int, help="HAProxy HTTP frontend port [default: a free one]")
@click.option("--haproxy-stats-port", type=int, help="HAProxy stats page port [default: a free one]")
@click.option("--nginx-port", type=int, help="nginx HTTP port [default: a free one]")
@click.option("--consul-port", type=int, help="Consul HTTP port [default: a free one]")
@click.option("--consul-acl", is_flag=True, help="Consul with ACLs on, default deny; `dev env` exports the token")
@click.option("--mesos-port", type=int, help="Mesos master stand-in HTTP port [default: a free one]")
@click.option("--marathon-port", type=int, help="Marathon stand-in HTTP port [default: a free one]")
@click.option("--chronos-port", type=int, help="Chronos stand-in HTTP port [default: a free one]")
@click.option("--prometheus-port", type=int, help="Prometheus HTTP port [default: a free one]")
@click.option("--registry-port", type=int, help="Docker registry port [default: a free one]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def up(ctx: click.Context, as_json: bool, consul_acl: bool, **ports: int | None) -> None:
    """Start the dev cluster and wait until every service is healthy."""
    flags = {"--" + name.replace("_", "-"): port for name, port in ports.items()}
    status = _cluster(ctx).up(flags, options={"consul_acl": consul_acl})
    if status["already_running"] and not as_json:
        click.echo(f"dev cluster already running in {status['state_dir']}")
    _print_status(status, as_json)


@dev.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show each service's pid, health and endpoints; exit 1 unless all are healthy."""
    result = _cluster(ctx).status()
    _print_status(result, as_json)
    if not result["running"]:
        ctx.exit(1)


@dev.command()
@click.pass_context
def env(ctx: click.Context) -> None:
    """Print `export NAME=value` lines that point clients at the cluster (eval "$(wharf dev env)")."""
    for name, value in _cluster(ctx).env().items():
        click.echo(f"export {name}={shlex.quote(value)}")


@dev.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def restart(ctx: click.Context, name: str, as_json: bool) -> None:
    """Restart one service on the same ports, dropping what it held in memory (fault injection)."""
    row = _cluster(ctx).restart(name)
    _print_status({"state_dir": "", "running": row["healthy"], "services": {name: row}}, as_json)


@dev.command()
@click.option("--purge", is_flag=True, help="Also delete the services' data (ZooKeeper, Marathon's apps, images, logs)")
@click.pass_context
def down(ctx: click.Context, purge: bool) -> None:
    """Stop every process the cluster started; harmless when none runs."""
    stopped = _cluster(ctx).down(purge=purge)
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "no dev cluster was running")
