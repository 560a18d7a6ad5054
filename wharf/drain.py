"""Drain before kill: the tasks wharf removes leave rotation first, then go.

A scale-down (`wharf apps scale`, the autoscaler) picks the tasks to remove, puts their Consul
registrations in maintenance (the renderer takes them out of HAProxy through its Runtime API), waits
until every HAProxy it may watch has them out of rotation with no current session, or a drain
timeout, then kills exactly those tasks and lowers the count in one call (Marathon's
`POST /v2/tasks/delete?scale=true`). A task that dies on its own meanwhile is simply gone: another
round drains whatever is still above the target. Anything that fails before the kill lifts the
maintenance it set, so nothing is left out of rotation by a drain that did not happen.

Deciding is pure (`choose`, `tracked`, `settled`); `Drain` is the thin loop around Marathon, Consul
and HAProxy's statistics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wharf.consul_http import address_of
from wharf.contracts.marathon_lb import service_name
from wharf.errors import Failure, WharfError, describe, reaching
from wharf.haproxy import StatRow, StatsSource, parse_stat_csv

#: without an HAProxy to watch, the kill follows the maintenance after this long (at most the timeout)
UNWATCHED_SETTLE = 2.0
MAX_ROUNDS = 3
POLL = 0.05
REASON = "wharf: draining before kill"


def choose(tasks: Sequence[Mapping[str, Any]], count: int, kill_selection: str = "YOUNGEST_FIRST"
           ) -> list[Mapping[str, Any]]:
    """The `count` tasks to remove, as Marathon would pick them: tasks not running yet first, then
    the unhealthy, then by the app's `killSelection` (youngest first unless `OLDEST_FIRST`)."""
    def started(task: Mapping[str, Any]) -> str:
        return str(task.get("startedAt") or task.get("stagedAt") or "")

    def rank(task: Mapping[str, Any]) -> tuple[bool, bool]:
        running = task.get("state", "TASK_RUNNING") == "TASK_RUNNING"
        results = task.get("healthCheckResults") or []
        healthy = all(r.get("alive") for r in results)
        return running, healthy

    by_age = sorted(tasks, key=started, reverse=kill_selection != "OLDEST_FIRST")
    return sorted(by_age, key=rank)[:max(0, count)]  # sorted() is stable: age order within a rank


def endpoints(task: Mapping[str, Any]) -> set[str]:
    """`host:port` of each of a task's ports, as HAProxy's `addr` column shows its servers."""
    return {f"{task.get('host')}:{port}" for port in task.get("ports") or []}


def tracked(rows: Iterable[StatRow], addresses: set[str]) -> set[tuple[str, str]]:
    """The (backend, server) rows serving one of `addresses`: what must drain."""
    return {(r.pxname, r.svname) for r in rows if r.svname not in ("FRONTEND", "BACKEND")
            and r.fields.get("addr") in addresses}


def settled(rows: Iterable[StatRow], watched: set[tuple[str, str]], addresses: set[str]) -> bool:
    """Whether every watched server is out of rotation (in maintenance, or its slot pointed elsewhere,
    or gone) with no current session."""
    by_key = {(r.pxname, r.svname): r for r in rows}
    for key in watched:
        row = by_key.get(key)
        if row is None:
            continue
        out = "MAINT" in row.fields.get("status", "") or row.fields.get("addr") not in addresses
        if not out or (row.number("scur") or 0) > 0:
            return False
    return True


@dataclass
class DrainReport:
    """What a scale-down did: the tasks drained and killed, how long the drain took, and whether the
    timeout cut it short."""

    app: str
    before: int
    target: int
    killed: list[str] = field(default_factory=list)
    drained: list[dict[str, Any]] = field(default_factory=list)
    waited: float = 0.0
    timed_out: bool = False
    watched: int = 0
    deployment: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"app": self.app, "from": self.before, "instances": self.target, "killed": self.killed,
                "drained": self.drained, "waited": round(self.waited, 3), "timed_out": self.timed_out,
                "haproxy_servers_watched": self.watched, "deployment": self.deployment}


def agents(local: Any, addr: str, token: str | None = None, cacert: str | None = None
           ) -> Callable[[str, str], Any]:
    """Node name and address -> the Consul agent that holds that node's registrations: `local` (the
    client of `addr`) for its own node, else the agent at the node's address on `addr`'s port and
    scheme, with the same token and CA."""
    from urllib.parse import urlsplit

    from wharf.consul_http import client

    parts = urlsplit(addr if "://" in addr else f"http://{addr}")
    own: list[str] = []

    def agent_for(node: str, address: str) -> Any:
        if not own:
            own.append(str(local.agent.self()["Config"]["NodeName"]))
        if node == own[0]:
            return local
        return client(f"{parts.scheme}://{address}:{parts.port or 8500}", token, cacert)
    return agent_for


def from_settings(marathon: Any, haproxies: Sequence[StatsSource], settings: Mapping[str, Any],
                  timeout: float, say: Callable[[str], None] = lambda line: None) -> Drain:
    """A `Drain` on `marathon`, the Consul of wharf's settings (`CONSUL_HTTP_ADDR`, its token and CA)
    and `haproxies`."""
    from wharf.consul_http import client

    addr, token, cacert = settings["consul_http_addr"], settings["consul_http_token"], settings["consul_cacert"]
    consul = client(addr, token, cacert)
    return Drain(marathon, consul, haproxies, timeout, agent_for=agents(consul, addr, token, cacert), say=say)


class Drain:
    """Scale an app down with drain before kill: Marathon for the tasks and the kill, Consul for the
    maintenance (each registration on the agent of its node), HAProxy's statistics to see it drained."""

    def __init__(self, marathon: Any, consul: Any, haproxies: Sequence[StatsSource], timeout: float = 30.0,
                 agent_for: Callable[[str, str], Any] | None = None,
                 say: Callable[[str], None] = lambda line: None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.marathon, self.consul, self.haproxies, self.timeout = marathon, consul, list(haproxies), timeout
        self.agent_for = agent_for or (lambda node, address: consul)
        self.say, self.clock, self.sleep = say, clock, sleep

    def scale_down(self, app_id: str, target: int) -> DrainReport:
        """Bring `app_id` down to `target` instances, draining each task before it is killed."""
        app = self.marathon.app(app_id)
        if app is None:
            raise Failure(f"Marathon has no app {app_id}")
        report = DrainReport(app["id"], int(app.get("instances", 0)), target)
        for _ in range(MAX_ROUNDS):
            app = self.marathon.app(app_id) or app
            tasks = [t for t in self.marathon.tasks(app_id) if t.get("state") != "TASK_KILLING"]
            extra = int(app.get("instances", 0)) - target
            unlaunched = max(0, int(app.get("instances", 0)) - len(tasks))
            if extra <= 0:
                break
            if extra <= unlaunched:  # only instances still to launch go: lowering the count is enough
                report.deployment = self.marathon.scale(app_id, target)
                break
            self._round(app, choose(tasks, extra - unlaunched, str(app.get("killSelection") or "YOUNGEST_FIRST")),
                        report)
        else:
            left = int((self.marathon.app(app_id) or {}).get("instances", 0))
            if left > target:
                raise Failure(f"{app_id}: still {left} instances after {MAX_ROUNDS} rounds of draining "
                              f"(tasks kept dying or being replaced); nothing more was killed")
        return report

    def _round(self, app: Mapping[str, Any], chosen: list[Mapping[str, Any]], report: DrainReport) -> None:
        ids = [str(t["id"]) for t in chosen]
        addresses = set().union(*(endpoints(t) for t in chosen))
        watched = self._read_rows()
        servers = {(name, key) for name, rows in watched.items() for key in tracked(rows, addresses)}
        registrations = self._registrations(app["id"], set(ids))
        self.say(f"draining {len(ids)} of {report.before} tasks: {', '.join(ids)}")
        drained: list[tuple[Any, str]] = []
        try:
            for agent, service_id in registrations:
                with reaching("Consul", address_of(agent)):
                    agent.agent.service.maintenance(service_id, "true", REASON)
                drained.append((agent, service_id))
            self.say(f"{len(drained)} registrations in maintenance; watching {len(servers)} HAProxy servers")
            report.waited, report.timed_out = self._wait(servers, addresses)
            report.deployment = self.marathon.kill_tasks(ids, scale=True)
        except BaseException:
            for agent, service_id in drained:
                try:
                    agent.agent.service.maintenance(service_id, "false")
                except Exception as exc:  # noqa: BLE001 - the first failure is what the caller sees
                    self.say(f"could not lift maintenance on {service_id}: {describe(exc)}")
            raise
        report.killed += ids
        report.watched += len(servers)
        report.drained += [{"task": str(t["id"]), "host": t.get("host"), "ports": list(t.get("ports") or [])}
                           for t in chosen]
        how = "timed out after" if report.timed_out else "drained in"
        self.say(f"{how} {report.waited:.1f}s; killed {len(ids)} (deployment {report.deployment})")

    def _registrations(self, app_id: str, task_ids: set[str]) -> list[tuple[Any, str]]:
        """(agent client, service id) of each Consul registration of these tasks (the contract's Meta
        `mesos_task_id`, under the app's contract service name)."""
        found = []
        with reaching("Consul", address_of(self.consul)):
            _, entries = self.consul.health.service(service_name(app_id))
            for entry in entries:
                service, node = entry.get("Service") or {}, entry.get("Node") or {}
                if (service.get("Meta") or {}).get("mesos_task_id") in task_ids:
                    found.append((self.agent_for(str(node.get("Node")), str(node.get("Address"))), service["ID"]))
        return found

    def _read_rows(self) -> dict[str, list[StatRow]]:
        rows = {}
        for source in self.haproxies:
            try:
                rows[source.name] = parse_stat_csv(source.read())
            except WharfError as exc:
                self.say(f"HAProxy at {source.name} not read: {describe(exc)}")
        return rows

    def _wait(self, servers: set[tuple[str, tuple[str, str]]], addresses: set[str]) -> tuple[float, bool]:
        """Until every watched server is out of rotation with no session, or the timeout; (seconds, timed out)."""
        start = self.clock()
        if not self.haproxies:
            self.sleep(min(self.timeout, UNWATCHED_SETTLE))
            return self.clock() - start, False
        while True:
            rows = self._read_rows()  # an HAProxy that cannot be read now is not drained yet
            if all(name in rows and settled(rows[name], {key}, addresses) for name, key in servers):
                return self.clock() - start, False
            if self.clock() - start >= self.timeout:
                return self.clock() - start, True
            self.sleep(POLL)
