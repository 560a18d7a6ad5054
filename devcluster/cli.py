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
    width = max(13, *(len(name) for name in status["services"]))
    for name, row in status["services"].items():
        state = "healthy" if row["healthy"] else click.style(f"unhealthy: {row['error']}", fg="red")
        click.echo(f"{name:<{width}} {state}  pid {row['pid'] or '-'}")
        for key, value in row.items():
            if key not in hidden:
                click.echo(f"    {key:<14} {value}")
    _print_nodes(status["services"], status.get("nodes", []))


def _print_nodes(services: dict[str, Any], nodes: list[dict[str, Any]]) -> None:
    """One line per node: its address, its agent's address and health, its registrator's pid and health."""
    if nodes:
        click.echo("nodes")
    for node in nodes:
        parts = [f"{node['node']:<7} {node['address']:<11}"]
        for kind in ("consul", "registrator"):
            row = services.get(f"{node['node']}-{kind}")
            if row is not None:
                health = "healthy" if row["healthy"] else click.style(str(row["error"]), fg="red")
                where = f"{node['consul']} " if kind == "consul" else ""
                parts.append(f"{kind} {where}pid {row['pid'] or '-'} {health}")
        click.echo("    " + "  ".join(parts))


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
@click.option("--nodes", type=int, default=None,
              help="N nodes on 127.0.0.2..: N Mesos agents, each node with a Consul client agent of its own")
@click.option("--registrator", is_flag=True, help="With --nodes: a registrator per node, on its node's agent")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def up(ctx: click.Context, as_json: bool, consul_acl: bool, nodes: int | None, registrator: bool,
       **ports: int | None) -> None:
    """Start the dev cluster and wait until every service is healthy."""
    from devcluster.nodes import node_options

    flags = {"--" + name.replace("_", "-"): port for name, port in ports.items()}
    options = {"consul_acl": consul_acl, **node_options(nodes, registrator)}
    status = _cluster(ctx).up(flags, options=options)
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
@click.option("--node", type=int, default=None, help="Point CONSUL_HTTP_ADDR at node K's Consul agent")
@click.pass_context
def env(ctx: click.Context, node: int | None) -> None:
    """Print `export NAME=value` lines that point clients at the cluster (eval "$(wharf dev env)")."""
    for name, value in _cluster(ctx).env(node).items():
        click.echo(f"export {name}={shlex.quote(value)}")


@dev.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def restart(ctx: click.Context, name: str, as_json: bool) -> None:
    """Restart one service on the same ports, dropping what it held in memory (fault injection)."""
    row = _cluster(ctx).restart(name)
    _print_status({"state_dir": "", "running": row["healthy"], "services": {name: row}}, as_json)


def _print_node(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(row, indent=2))
    else:
        click.echo(f"{row['node']} ({row['address']}): {'running' if row['alive'] else 'not running'}")


@dev.command("kill-node")
@click.argument("node", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def kill_node(ctx: click.Context, node: int, as_json: bool) -> None:
    """SIGKILL node NODE's Consul agent and registrator at once, as a host dropping off the network
    (its containers keep running)."""
    _print_node(_cluster(ctx).kill_node(node), as_json)


@dev.command("restart-node")
@click.argument("node", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_context
def restart_node(ctx: click.Context, node: int, as_json: bool) -> None:
    """Start node NODE's Consul agent (with a clean data dir) and registrator again on the same ports;
    wait until they are healthy."""
    _print_node(_cluster(ctx).restart_node(node), as_json)


@dev.command()
@click.option("--purge", is_flag=True, help="Also delete the services' data (ZooKeeper, Marathon's apps, images, logs)")
@click.pass_context
def down(ctx: click.Context, purge: bool) -> None:
    """Stop every process the cluster started; harmless when none runs."""
    stopped = _cluster(ctx).down(purge=purge)
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "no dev cluster was running")
