"""One app through every link of the pipeline, judged from what was read: pure.

`trace(view, app_id)` takes a `View` (Marathon's apps with their tasks and deployments, Consul's
registrations with their checks, each HAProxy's statistics, the renderer's record of the config it
applied, the autoscaler's last decisions) and returns a `Trace`: one `Link` per stage, in pipeline
order (config, marathon, tasks, consul, haproxy, autoscale), each with its state, a one-line
summary, the evidence, and for a broken link what to check. The first broken link is the answer to
"why is my app not serving?". `wharf trace` and the web view both call this; nothing else judges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from wharf.contracts import autoscale
from wharf.contracts.consul_meta import MAINTENANCE_PREFIX, MARATHON_APP_ID, MESOS_TASK_ID
from wharf.contracts.marathon_app import COMMIT_LABEL
from wharf.contracts.marathon_lb import deployment_group, route_name, service_ports
from wharf.drain import REASON as DRAIN_REASON
from wharf.haproxy import Applied, StatRow, takes_requests
from wharf.marathon import healthy_counts

OK, WARN, BROKEN, NONE = "ok", "warn", "broken", "none"  # NONE: the link does not apply, or was not given
STALE_DECISION = 300.0  # seconds: an autoscaler deciding every minute has stopped by then


@dataclass(frozen=True)
class Check:
    """One Consul check of a registration."""

    id: str
    name: str
    status: str
    output: str = ""
    notes: str = ""


@dataclass(frozen=True)
class CatalogEntry:
    """One Consul registration of a task's port, with its checks."""

    id: str
    service: str
    node: str
    address: str
    port: int
    meta: Mapping[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    @property
    def maintenance(self) -> Check | None:
        return next((c for c in self.checks if c.id.startswith(MAINTENANCE_PREFIX)), None)

    @property
    def status(self) -> str:
        """`maintenance`, else the worst check's status (`passing` with no check)."""
        if self.maintenance is not None:
            return "maintenance"
        order = {"passing": 0, "warning": 1, "critical": 2}
        return max((c.status for c in self.checks), key=lambda s: order.get(s, 2), default="passing")


@dataclass(frozen=True)
class ConfigFile:
    """The HAProxy config file the renderer writes, and its record of what HAProxy was made to run."""

    path: str
    mtime: float | None
    applied: Applied | None
    matches: bool | None  # None: no record


@dataclass
class View:
    """Everything read once, for any number of apps. `unreachable`: system -> the error."""

    now: float
    apps: Mapping[str, Mapping[str, Any]]  # Marathon's apps by id, tasks embedded
    deployments: Sequence[Mapping[str, Any]] = ()
    registrations: Sequence[CatalogEntry] = ()
    haproxies: Mapping[str, Sequence[StatRow]] = field(default_factory=dict)
    config: ConfigFile | None = None
    decisions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def by_app(self) -> dict[str, list[CatalogEntry]]:
        """The registrations of each Marathon app id."""
        out: dict[str, list[CatalogEntry]] = {}
        for reg in self.registrations:
            out.setdefault(reg.meta.get(MARATHON_APP_ID, ""), []).append(reg)
        return out

    @cached_property
    def backends(self) -> dict[str, dict[str, list[StatRow]]]:
        """Each HAProxy's server rows, by backend."""
        out: dict[str, dict[str, list[StatRow]]] = {}
        for source, rows in self.haproxies.items():
            mine = out.setdefault(source, {})
            for row in rows:
                if row.svname not in ("FRONTEND", "BACKEND"):
                    mine.setdefault(row.pxname, []).append(row)
        return out


@dataclass(frozen=True)
class Link:
    """One stage of the pipeline for one app."""

    name: str
    state: str
    summary: str
    check: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "summary": self.summary, "check": self.check,
                "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Trace:
    """An app's links in pipeline order; `broken` is the first that does not hold."""

    app: str
    links: tuple[Link, ...]

    @property
    def broken(self) -> Link | None:
        return next((link for link in self.links if link.state == BROKEN), None)

    def to_json(self) -> dict[str, Any]:
        broken = self.broken
        return {"app": self.app, "ok": broken is None, "broken": broken.name if broken else None,
                "check": broken.check if broken else None, "links": [link.to_json() for link in self.links]}


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def members(view: View, app_id: str) -> list[Mapping[str, Any]]:
    """The Marathon apps `app_id` names: the app itself, or the colours of its blue/green group."""
    if app_id in view.apps:
        return [view.apps[app_id]]
    return sorted((a for a in view.apps.values() if deployment_group(a.get("labels") or {}) == app_id),
                  key=lambda a: str(a.get("id")))


def config_link(apps: Sequence[Mapping[str, Any]]) -> Link:
    """The commit that last deployed the app (its `wharf.commit` label)."""
    commits = sorted({str((a.get("labels") or {}).get(COMMIT_LABEL)) for a in apps
                      if (a.get("labels") or {}).get(COMMIT_LABEL)})
    if not commits:
        return Link("config", NONE, "no wharf.commit label: not deployed from a config repository by wharf")
    shown = ", ".join(c[:12] for c in commits)
    return Link("config", OK, f"deployed from commit {shown}", evidence={"commits": commits})


def marathon_link(view: View, app_id: str, apps: Sequence[Mapping[str, Any]]) -> Link:
    """Is Marathon running what it should: no deployment stuck, every instance launched."""
    if not apps:
        return Link("marathon", BROKEN, f"no app {app_id} in Marathon",
                    "`wharf apps status` lists what runs; was the app deployed (`wharf apps deploy`)?")
    wanted = sum(int(a.get("instances", 0)) for a in apps)
    running = sum(int(a.get("tasksRunning", 0) or 0) for a in apps)
    healthy = sum(healthy_counts(a)[0] for a in apps)
    ids = {str(a["id"]) for a in apps}
    deploying = [d for d in view.deployments if ids & set(d.get("affectedApps") or [])]
    failure = next((a["lastTaskFailure"] for a in apps if a.get("lastTaskFailure")), None)
    evidence = {"apps": sorted(ids), "versions": [a.get("version") for a in apps], "instances": wanted,
                "running": running, "healthy": healthy, "deployments": [d.get("id") for d in deploying],
                "last_task_failure": failure}
    counts = f"{healthy}/{wanted} healthy, {running} running"
    why = f"; last task failure: {failure.get('state')} {failure.get('message', '')!r}" if failure else ""
    if deploying and healthy < wanted:
        started = min((t for d in deploying if (t := _epoch(d.get("version"))) is not None), default=None)
        age = f" for {view.now - started:.0f}s" if started is not None else ""
        return Link("marathon", BROKEN, f"deployment {deploying[0].get('id')} in progress{age}: {counts}{why}",
                    "the new tasks do not get healthy: see the tasks' health and the last task failure "
                    "(`wharf apps deploy` rolls back after --timeout; `wharf apps rollback` by hand)", evidence)
    if running < wanted:
        return Link("marathon", BROKEN, f"{running} of {wanted} instances running{why}",
                    "Marathon cannot launch them: offers too small, constraints, or the task fails at once",
                    evidence)
    state = WARN if deploying else OK
    return Link("marathon", state, f"{', '.join(sorted(ids))}: {counts}" + (", deploying" if deploying else ""),
                evidence=evidence)


def _tasks(apps: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [t for a in apps for t in a.get("tasks") or []]


def tasks_link(apps: Sequence[Mapping[str, Any]]) -> Link:
    """Is every task running and passing its Marathon health checks."""
    tasks = _tasks(apps)
    rows = [{"id": t.get("id"), "host": t.get("host"), "ports": list(t.get("ports") or []), "state": t.get("state"),
             "alive": [r.get("alive") for r in t.get("healthCheckResults") or []]} for t in tasks]
    if not tasks:
        return Link("tasks", NONE, "no tasks", evidence={"tasks": rows})
    checked = any(a.get("healthChecks") for a in apps)
    for task in tasks:
        results = task.get("healthCheckResults") or []
        failing = [r for r in results if not r.get("alive")]
        if checked and task.get("state") == "TASK_RUNNING" and failing and any(r.get("lastFailure") for r in failing):
            cause = failing[0].get("lastFailureCause") or "no cause given"
            where = f"{task.get('host')}:{(task.get('ports') or ['?'])[0]}"
            return Link("tasks", BROKEN, f"task {task.get('id')} on {where} fails its health check: {cause}",
                        "the app itself: its log (`docker logs` on that host) and the check's path or port",
                        {"tasks": rows})
    hosts = sorted({str(t.get("host")) for t in tasks})
    return Link("tasks", OK, f"{len(tasks)} tasks on {', '.join(hosts)}", evidence={"tasks": rows})


def consul_link(view: View, apps: Sequence[Mapping[str, Any]]) -> Link:
    """Is every running task registered in Consul, passing, and not in maintenance."""
    regs = [r for a in apps for r in view.by_app.get(str(a["id"]), [])]
    rows = [{"id": r.id, "task": r.meta.get(MESOS_TASK_ID), "node": r.node, "address": f"{r.address}:{r.port}",
             "status": r.status} for r in regs]
    evidence = {"registrations": rows}
    if "consul" in view.unreachable:
        return Link("consul", BROKEN, f"Consul not read: {view.unreachable['consul']}",
                    "is Consul's agent running at CONSUL_HTTP_ADDR?", evidence)
    running = [t for t in _tasks(apps) if t.get("state") == "TASK_RUNNING"]
    registered = {r.meta.get(MESOS_TASK_ID) for r in regs}
    missing = [t for t in running if t.get("id") not in registered]
    if missing:
        hosts = sorted({str(t.get("host")) for t in missing})
        some = "none" if len(missing) == len(running) else f"{len(missing)} not"
        where = ", ".join(hosts)
        return Link("consul", BROKEN, f"{len(running)} tasks running on {where}, {some} registered in Consul",
                    f"is `wharf registrator run` running on {where}?", evidence)
    held = [r for r in regs if r.maintenance is not None and r.maintenance.notes != DRAIN_REASON]
    if held:
        reason = held[0].maintenance.notes if held[0].maintenance else ""
        return Link("consul", BROKEN, f"{len(held)} registrations in maintenance ({reason or 'no reason given'}): "
                    f"{held[0].id}", f"lift it when done: `consul maint -disable -service {held[0].id}`", evidence)
    healthy_tasks = {str(t.get("id")) for t in running
                     if all(r.get("alive") for r in t.get("healthCheckResults") or [])}
    critical = [r for r in regs if r.status in ("critical", "warning") and r.meta.get(MESOS_TASK_ID) in healthy_tasks]
    if critical:
        check = next((c for c in critical[0].checks if c.status != "passing"), None)
        said = f"{check.name}: {check.output.strip()[:120]}" if check else ""
        return Link("consul", BROKEN, f"{len(critical)} healthy tasks' registrations are {critical[0].status} ({said})",
                    "Consul's agent runs the check from its own host: can it reach the task's address?", evidence)
    draining = [r for r in regs if r.maintenance is not None]
    passing = sum(1 for r in regs if r.status == "passing")
    summary = f"{passing}/{len(regs)} registrations passing" + (f", {len(draining)} draining" if draining else "")
    return Link("consul", WARN if draining else OK, summary, evidence=evidence)


def haproxy_link(view: View, app_id: str, apps: Sequence[Mapping[str, Any]]) -> Link:
    """Does every HAProxy route the passing registrations, and run the config on disk."""
    if not view.haproxies and "haproxy" not in view.unreachable:
        return Link("haproxy", NONE, "no HAProxy given (--haproxy, or WHARF_HAPROXY_SOCKET)")
    if "haproxy" in view.unreachable:
        return Link("haproxy", BROKEN, f"HAProxy not read: {view.unreachable['haproxy']}",
                    "is HAProxy running, and its admin socket or stats page where --haproxy says?")
    group = deployment_group((apps[0].get("labels") or {}) if apps else {}) or app_id
    names = sorted({route_name(group, port) for a in apps for port in service_ports(a).values()})
    wanted = {f"{r.address}:{r.port}" for a in apps for r in view.by_app.get(str(a["id"]), [])
              if r.status == "passing"}
    servers = [{"haproxy": source, "backend": row.pxname, "server": row.svname, "addr": row.fields.get("addr"),
                "status": row.fields.get("status"), "scur": row.number("scur"), "rate": row.number("rate")}
               for source, backends in sorted(view.backends.items()) for name in names
               for row in backends.get(name, []) if row.fields.get("addr")]
    evidence = {"backends": names, "servers": servers}
    config = view.config
    if config is not None and config.matches is False and config.applied is not None:
        return Link("haproxy", BROKEN, f"HAProxy runs an older config than {config.path} (written "
                    f"{view.now - (config.mtime or view.now):.0f}s ago, last applied "
                    f"{view.now - config.applied.at:.0f}s ago by {config.applied.how})",
                    "the renderer's reload failed or the file was edited: see `wharf render run`'s log", evidence)
    for source in sorted(view.haproxies):
        routed = {s["addr"] for s in servers if s["haproxy"] == source and takes_requests(str(s["status"]))}
        if wanted - routed:
            lost = sorted(wanted - routed)
            return Link("haproxy", BROKEN, f"{len(lost)} passing registrations not in rotation in {source}: "
                        f"{', '.join(lost[:3])}", "is `wharf render run` running for this HAProxy?", evidence)
    up = sum(1 for s in servers if takes_requests(str(s["status"])))
    return Link("haproxy", OK, f"{', '.join(names) or 'no backend'}: {up} servers up", evidence=evidence)


def autoscale_link(view: View, apps: Sequence[Mapping[str, Any]]) -> Link:
    """The autoscaler's last decision: none expected, recent, or pinned at the app's maximum."""
    scaled = [a for a in apps if autoscale.autoscaled(a.get("labels") or {})]
    if not scaled:
        return Link("autoscale", NONE, "not autoscaled")
    decision = next((view.decisions[str(a["id"])] for a in scaled if str(a["id"]) in view.decisions), None)
    if decision is None:
        return Link("autoscale", WARN, "no decision recorded", "is `wharf autoscale run` running?")
    age = view.now - float(decision.get("at") or 0)
    said = f"{decision.get('action')} {decision.get('current')} -> {decision.get('target')} ({age:.0f}s ago): " \
           f"{decision.get('reason')}"
    if autoscale.pinned(decision):
        return Link("autoscale", BROKEN, f"held at its maximum {decision.get('max')}: it would run "
                    f"{decision.get('recommendation')} ({decision.get('rps')} req/s, target "
                    f"{decision.get('target_rps')} per instance)",
                    "raise the app's wharf.autoscale.max label (`max` under `autoscale:` in its spec) or add "
                    "capacity", dict(decision))
    if age > STALE_DECISION:
        return Link("autoscale", WARN, f"last decision {age:.0f}s ago: {said}", "is `wharf autoscale run` running?",
                    dict(decision))
    return Link("autoscale", OK, said, evidence=dict(decision))


def trace(view: View, app_id: str) -> Trace:
    """Every link of `app_id` (an app's id, or a blue/green group's), in pipeline order."""
    apps = members(view, app_id)
    return Trace(app_id, (config_link(apps), marathon_link(view, app_id, apps), tasks_link(apps),
                          consul_link(view, apps), haproxy_link(view, app_id, apps), autoscale_link(view, apps)))


def app_ids(view: View) -> list[str]:
    """Every app to trace: each Marathon app, a blue/green group's colours as the group."""
    return sorted({deployment_group(a.get("labels") or {}) or str(a["id"]) for a in view.apps.values()})
