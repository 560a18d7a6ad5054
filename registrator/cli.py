"""`wharf registrator`: the daemon (`run`) and one reconcile (`sync --once`)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import click

from wharf.errors import BadInput, reaching

DOCKER_API = "1.41"  # Docker 20.10; later engines still speak it


def _host_ip(hostname: str) -> str:
    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return "127.0.0.1"


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--ip", default=None, help="Address to register every service at (else a task's HOST, "
                     "else a published port's own address, else the host's)"),
        click.option("--host-ip", default=None, help="The host's address [default: the hostname's]"),
        click.option("--internal", is_flag=True, help="Register containers' own addresses and exposed ports"),
        click.option("--explicit", is_flag=True, help="Only register services with a SERVICE_NAME"),
        click.option("--tags", default="", help="Tags added to every service, comma-separated"),
        click.option("--deregister", type=click.Choice(["always", "on-success"]), default="always",
                     show_default=True, help="On `die`: always deregister, or only after exit code 0"),
        click.option("--hostname", default=None, help="Host part of service IDs [default: this host's name]"),
        click.option("--owner", default=None, help="Owner marker written in Meta wharf_owner; only services "
                     "carrying it are ever changed [default: wharf-registrator@HOSTNAME]"),
        click.option("--docker-host", default=None, help="Docker engine [env DOCKER_HOST]"),
        click.option("--node-address", default=None, help="Only this node's containers: tasks whose HOST is "
                     "this address, else ports published on it (several nodes sharing one Docker engine)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build(settings: Any, flags: dict[str, Any], resync: float = 0.0, drain_timeout: float = 120.0) -> Any:
    """The `Registrator` with its Docker client, Consul agent and Marathon lookup, from flags and settings."""
    from registrator.consul_agent import Agent
    from registrator.marathon import AppVersions
    from registrator.model import Options
    from registrator.worker import Registrator
    from wharf.consul_http import client_from

    hostname = flags["hostname"] or socket.gethostname()
    for flag in ("ip", "host_ip", "node_address"):
        if flags[flag]:
            try:
                ipaddress.ip_address(flags[flag])
            except ValueError:
                raise BadInput(f"--{flag.replace('_', '-')}: {flags[flag]!r} is not an IP address") from None
    options = Options(
        hostname=hostname, host_ip=flags["host_ip"] or _host_ip(hostname),
        owner=flags["owner"] or f"wharf-registrator@{hostname}", ip=flags["ip"] or None,
        internal=flags["internal"], explicit=flags["explicit"],
        tags=tuple(t.strip() for t in flags["tags"].split(",") if t.strip()), deregister=flags["deregister"],
        node_address=flags["node_address"] or None)
    agent = Agent(client_from(settings))
    return Registrator(options, docker_client(flags["docker_host"]), agent,
                       AppVersions(settings["marathon_url"]), resync_every=resync, drain_limit=drain_timeout)


def docker_address(host: str | None) -> str:
    """The Docker engine's address as `--docker-host`, DOCKER_HOST or Docker's default give it."""
    return host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_client(host: str | None, timeout: float = 30) -> Any:
    """A low-level Docker API client for `host`, or as DOCKER_HOST and friends say."""
    import docker

    # a fixed API version: the client then needs no engine to be built (it may be down at start)
    kwargs: dict[str, Any] = {"base_url": host} if host else docker.utils.kwargs_from_env()
    kwargs.pop("version", None)
    return docker.APIClient(timeout=timeout, version=DOCKER_API, **kwargs)


@click.group()
def registrator() -> None:
    """Register Docker containers in Consul (registrator's SERVICE_* labels; Marathon tasks)."""


@registrator.command("run")
@_common
@click.option("--resync", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds between full reconciles besides those on start and reconnects (0: none)")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=120.0, show_default=True,
              help="Seconds a container may keep running after a stop signal before its drain is lifted")
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None,
              help="Serve Prometheus metrics on 127.0.0.1:PORT")
@click.pass_obj
def run(settings: Any, resync: float, drain_timeout: float, metrics_port: int | None, **flags: Any) -> None:
    """Watch Docker events and keep Consul's services in step, until SIGTERM."""
    from registrator.consul_agent import Agent
    from registrator.daemon import RegistratorDaemon
    from registrator.watch import ConsulWatcher, DockerWatcher, MarathonWatcher
    from wharf.consul_http import client_from
    from wharf.marathon import MarathonClient

    reg = build(settings, flags, resync, drain_timeout)
    watcher_agent = Agent(client_from(settings, timeout=20))
    docker_watcher = DockerWatcher(reg, lambda: docker_client(flags["docker_host"]),
                                   address=docker_address(flags["docker_host"]))
    consul_watcher = ConsulWatcher(reg, watcher_agent, address=settings.shown("consul_http_addr"))
    urls = settings["marathon_url"]
    marathon_watcher = MarathonWatcher(reg, MarathonClient(urls, timeout=5)) if urls else None
    daemon = RegistratorDaemon(reg, docker_watcher, consul_watcher, metrics_port, marathon_watcher)
    raise SystemExit(daemon.run(settings))


@registrator.command("sync")
@_common
@click.option("--once", is_flag=True, help="Reconcile once and exit (required)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_obj
def sync(settings: Any, once: bool, as_json: bool, **flags: Any) -> None:
    """Compare running containers with Consul once, fix both directions, print what changed."""
    if not once:
        raise BadInput("--once: `sync` runs one reconcile; the daemon is `wharf registrator run`")
    reg = build(settings, flags)
    with reaching("the Docker engine", docker_address(flags["docker_host"])):
        reg.refresh_from_docker(fresh=True)
    with reaching("Consul", settings.shown("consul_http_addr")):
        plan = reg.reconcile_consul()
    wanted = reg.all_wanted()
    result = {"registered": [r.id for r in plan.register], "deregistered": list(plan.deregister),
              "drained": list(plan.drain), "undrained": list(plan.undrain), "conflicts": list(plan.conflicts),
              "services": [{"id": r.id, "name": r.name, "address": r.address, "port": r.port,
                            "drained": r.drained} for r in sorted(wanted, key=lambda r: r.id)]}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    changed = {**{i: "registered" for i in result["registered"]}, **{i: "drained" for i in result["drained"]},
               **{i: "conflict (not ours)" for i in result["conflicts"]}}
    table = Table("service id", "name", "address", "change", box=None)
    for svc in result["services"]:
        table.add_row(svc["id"], svc["name"], f"{svc['address']}:{svc['port']}", changed.get(svc["id"], ""))
    for sid in result["deregistered"]:
        table.add_row(sid, "", "", "deregistered")
    Console().print(table)
    click.echo(f"{len(result['services'])} services; {plan.fixes()} changes")


@registrator.command("list")
@click.option("--owner", default=None, help="Only this registrator's services [default: every wharf registrator's]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@click.pass_obj
def list_services(settings: Any, owner: str | None, as_json: bool) -> None:
    """The services wharf registrators wrote on the Consul agent, with their health."""
    from registrator.model import health_rows
    from wharf.consul_http import client_from

    c = client_from(settings)
    with reaching("Consul", settings.shown("consul_http_addr")):
        rows = health_rows(c.agent.services(), c.agent.checks(), owner)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("service", "address", "health", "marathon app", "id", box=None)
    for row in rows:
        table.add_row(row["name"], f"{row['address']}:{row['port']}", row["health"], row["marathon_app_id"] or "",
                      row["id"])
    Console(width=200).print(table)
