"""`wharf framework`: run the scheduler, and submit, list, kill and follow its tasks."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import click

from framework.store import DEFAULT_ROOT
from wharf.errors import BadInput, Failure

TERMINAL = ("FINISHED", "FAILED", "KILLED", "LOST")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h`, `7d`, `1w` or `1h30m` (never negative); ValueError otherwise."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration (seconds, or e.g. 90s, 15m, 24h, 7d, 1h30m)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _client(ctx: click.Context, api: str | None, root: str) -> Any:
    from framework.client import Client, leader_from_zk

    if api:
        return Client(api)
    zk = ctx.obj["wharf_zk"] if ctx.obj else None
    if not zk:
        raise BadInput("--api or WHARF_ZK (--zk): where is the framework? Neither is set")
    return Client(leader_from_zk(zk, root))


def _api_options(func: Any) -> Any:
    func = click.option("--zk-path", "root", default=DEFAULT_ROOT, show_default=True,
                        help="ZooKeeper path of the framework's state")(func)
    return click.option("--api", default=None, envvar="WHARF_FRAMEWORK_API", metavar="URL",
                        help="A scheduler's API URL [env WHARF_FRAMEWORK_API; default: the leader, from WHARF_ZK]",
                        )(func)


@click.group()
def framework() -> None:
    """wharf's own Mesos framework: one-off and batch container tasks."""


@framework.command("run")
@click.option("--api-port", type=int, default=0, show_default=True, help="API port on 127.0.0.1 (0: any free)")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT")
@click.option("--zk-path", "root", default=DEFAULT_ROOT, show_default=True, help="ZooKeeper path of the state")
@click.option("--name", default="wharf", show_default=True, help="Framework name at the Mesos master")
@click.option("--user", default=None, help="User tasks run as [default: the current user]")
@click.option("--zk-timeout", type=float, default=10.0, show_default=True, help="ZooKeeper session timeout, s")
@click.option("--failover-timeout", type=float, default=7 * 24 * 3600.0, show_default=True,
              help="How long the master keeps the framework's tasks while no scheduler is subscribed, s")
@click.option("--task-retention", default="1d", show_default=True, callback=_duration, metavar="DURATION",
              help="How long finished tasks stay listed (and in ZooKeeper): seconds, or e.g. 90m, 24h, 7d")
@click.pass_obj
def run(settings: Any, api_port: int, metrics_port: int | None, root: str, name: str, user: str | None,
        zk_timeout: float, failover_timeout: float, task_retention: float) -> None:
    """Run one scheduler instance; several elect one leader in ZooKeeper (SIGTERM stops it cleanly)."""
    from framework.leader import FrameworkDaemon

    if not settings["wharf_zk"]:
        raise BadInput("WHARF_ZK (--zk): the framework keeps its state in ZooKeeper; none is set")
    if not settings["mesos_master"]:
        raise BadInput("MESOS_MASTER (--mesos-master): zk://host:port/mesos or host:port; none is set")
    if zk_timeout < 1 or failover_timeout < 0:
        raise BadInput("--zk-timeout must be at least 1 s and --failover-timeout not negative")
    daemon = FrameworkDaemon(settings["wharf_zk"], settings["mesos_master"], root=root, api_port=api_port,
                             metrics_port=metrics_port, name=name, user=user, zk_timeout=zk_timeout,
                             failover_timeout=failover_timeout, task_retention=task_retention)
    sys.exit(daemon.run(settings))


@framework.command("submit")
@click.option("--image", required=True, help="Docker image, e.g. registry/name:tag")
@click.option("--cmd", default=None, help="Shell command (default: the image's own)")
@click.option("--instances", type=int, default=1, show_default=True)
@click.option("--cpus", type=float, default=0.1, show_default=True)
@click.option("--mem", type=float, default=32.0, show_default=True, help="MB")
@click.option("--disk", type=float, default=0.0, show_default=True, help="MB")
@click.option("--port", "ports", type=int, multiple=True, help="Container port needing a host port (repeat)")
@click.option("--network", default="HOST", show_default=True, help="HOST, BRIDGE or NONE")
@click.option("--constraint", "constraints", multiple=True, metavar="FIELD:OP[:VALUE]",
              help="UNIQUE, CLUSTER, LIKE, UNLIKE, GROUP_BY, MAX_PER on hostname or an attribute (repeat)")
@click.option("--env", "env", multiple=True, metavar="K=V", help="Environment variable (repeat)")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Label, e.g. SERVICE_NAME=x (repeat)")
@click.option("--parameter", "parameters", multiple=True, metavar="K=V", help="docker run option (repeat)")
@click.option("--retries", type=int, default=0, show_default=True, help="Retries of a failed task")
@click.option("--wait", is_flag=True, help="Wait until every task has ended; exit 1 unless all FINISHED")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="With --wait: give up after, s")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@_api_options
@click.pass_context
def submit(ctx: click.Context, api: str | None, root: str, wait: bool, timeout: float, as_json: bool,
           **options: Any) -> None:
    """Queue INSTANCES copies of a container task; prints the task ids."""
    from framework.tasks import InvalidTask, parse_pairs, parse_submission

    try:
        body = dict(options)
        body["env"] = dict(parse_pairs(options["env"], "--env"))
        body["labels"] = dict(parse_pairs(options["labels"], "--label"))
        body["parameters"] = [list(p) for p in parse_pairs(options["parameters"], "--parameter")]
        body["constraints"], body["ports"] = list(options["constraints"]), list(options["ports"])
        submission = parse_submission(body)  # bad input stops here, before any call
    except InvalidTask as exc:
        raise BadInput(str(exc)) from None
    client = _client(ctx, api, root)
    result = client.submit(submission.to_json())
    if not wait:
        click.echo(json.dumps(result) if as_json else "\n".join(result["ids"]))
        return
    if not as_json:
        click.echo("\n".join(result["ids"]))
    states = _wait(client, result["ids"], timeout, quiet=as_json)
    if as_json:
        click.echo(json.dumps({**result, "states": states}))
    bad = {t: s for t, s in states.items() if s != "FINISHED"}
    if bad:
        raise Failure(f"{len(bad)} of {len(states)} tasks did not finish: "
                      + ", ".join(f"{t} {s}" for t, s in sorted(bad.items())[:10]))


def _wait(client: Any, ids: list[str], timeout: float, quiet: bool) -> dict[str, str]:
    from rich.progress import Progress

    wanted, deadline = set(ids), time.monotonic() + timeout
    with Progress(disable=quiet, transient=True) as progress:
        bar = progress.add_task("tasks finished", total=len(wanted))
        while True:
            states = {t["spec"]["id"]: t["state"] for t in client.tasks() if t["spec"]["id"] in wanted}
            done = sum(1 for s in states.values() if s in TERMINAL)
            progress.update(bar, completed=done)
            if done == len(wanted):
                return states
            if time.monotonic() > deadline:
                raise Failure(f"{len(wanted) - done} of {len(wanted)} tasks still not ended after {timeout:g}s")
            time.sleep(0.5)


@framework.command("list")
@click.option("--state", default=None, help="Only tasks in this state (QUEUED, RUNNING, FINISHED, ...)")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@_api_options
@click.pass_context
def list_tasks(ctx: click.Context, api: str | None, root: str, state: str | None, as_json: bool) -> None:
    """Every task the framework knows, with its state, host and attempts."""
    tasks = _client(ctx, api, root).tasks(state.upper() if state else None)
    if as_json:
        click.echo(json.dumps(tasks, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("task", "state", "host", "attempts", "image", "message", box=None)
    for t in tasks:
        table.add_row(t["spec"]["id"], t["state"], t["hostname"] or "", str(t["launches"]), t["spec"]["image"],
                      t["message"])
    Console(width=160).print(table)


@framework.command("kill")
@click.argument("task_ids", nargs=-1, required=True)
@_api_options
@click.pass_context
def kill(ctx: click.Context, api: str | None, root: str, task_ids: tuple[str, ...]) -> None:
    """Kill tasks: a queued one at once, a running one through Mesos."""
    client = _client(ctx, api, root)
    for task_id in task_ids:
        record = client.kill(task_id)
        click.echo(f"{task_id} {record['state']}{' (kill sent)' if record['state'] not in TERMINAL else ''}")


@framework.command("logs")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
@_api_options
@click.pass_context
def logs(ctx: click.Context, api: str | None, root: str, task_id: str, as_json: bool) -> None:
    """A task's event log: every state change, with the agent's message (exit status, reason)."""
    record = _client(ctx, api, root).task(task_id)
    if as_json:
        click.echo(json.dumps(record["history"]))
        return
    for stamp, state, message in record["history"]:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp * 1000) % 1000:03d}Z"
        click.echo(f"{when} {state:<8} {message}")
