"""One blue/green deploy, done: the new colour up and in rotation, then the old one drained, killed, deleted.

The thin loop around `marathon_apps.bluegreen`'s decisions: Marathon for the apps, Consul and
HAProxy's statistics (those `wharf.drain` watches) to see the new colour in rotation, and
`wharf.drain.Drain` for the old colour's instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from marathon_apps.bluegreen import group_apps, stamped
from marathon_apps.deploy import RolledBack, ready
from marathon_apps.plan import AppChange
from wharf.consul_http import address_of
from wharf.contracts.marathon_lb import route_name, service_name, service_ports
from wharf.drain import Drain
from wharf.errors import Failure, TimedOut, WharfError, describe, reaching
from wharf.haproxy import parse_stat_csv, takes_requests
from wharf.wait import wait_until


class NotHealthy(RolledBack):
    """The new colour never got healthy and in rotation: it was removed; the old one serves as before."""


def routed(rows: list[Any], backend: str, addresses: set[str]) -> bool | None:
    """Whether every one of `addresses` is a server in rotation in `backend` (HAProxy stats rows);
    None when this HAProxy has no such backend (it does not serve the group)."""
    servers = [r for r in rows if r.pxname == backend and r.svname not in ("FRONTEND", "BACKEND")]
    if not servers:
        return None
    live = {r.fields.get("addr") for r in servers if takes_requests(r.fields.get("status", ""))}
    return addresses <= live


class BlueGreen:
    """Runs blue/green changes against one Marathon, with `drain` for Consul, HAProxy and the old colour."""

    def __init__(self, client: Any, drain: Drain, timeout: float = 300.0, say: Callable[[str], None] = lambda _: None,
                 poll: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.drain, self.timeout, self.say = client, drain, timeout, say
        self.poll, self.clock = poll, clock

    def run(self, change: AppChange) -> str:
        """Deploy `change` (kind `bluegreen`); the account of what happened. Raises `NotHealthy` when
        the new colour was removed, `Failure` when something else stopped it."""
        assert change.desired is not None
        new, old = stamped(change.desired), change.live
        new_id, wanted = str(new["id"]), int(new.get("instances", 1))
        self._refuse_leftovers(change.app_id, old)
        self.say(f"starting {new_id} ({wanted} instances) beside {old['id'] if old else 'nothing'}")
        self.client.put_app(new_id, new)
        backend = route_name(change.app_id, service_ports(new)[0])
        try:
            wait_until(lambda: self.in_rotation(new_id, wanted, backend), self.timeout, self.poll,
                       f"{new_id} healthy and in rotation", clock=self.clock)
        except TimedOut:
            self._remove(new_id)
            kept = f"{old['id']} serves as before" if old else "nothing else ran"
            raise NotHealthy(f"{new_id} was not healthy and in rotation within {self.timeout:g}s: removed it; "
                             f"{kept}") from None
        self.say(f"{new_id}: {wanted} instances healthy and in rotation")
        if old is None:
            return f"{new_id} serves"
        report = self.drain.scale_down(str(old["id"]), 0)
        self._remove(str(old["id"]))
        return f"{new_id} serves; {old['id']} drained ({len(report.killed)} tasks) and deleted"

    def _refuse_leftovers(self, group: str, old: Mapping[str, Any] | None) -> None:
        """A colour besides the active one means an earlier blue/green deploy did not finish."""
        others = [str(a["id"]) for a in group_apps(self.client.apps(), group) if old is None or a["id"] != old["id"]]
        if others:
            raise Failure(f"{group}: {', '.join(others)} also runs: an earlier blue/green deploy did not finish; "
                          f"delete it (or roll back) first")

    def in_rotation(self, app_id: str, wanted: int, backend: str) -> bool:
        """Marathon counts every instance healthy, Consul has each task passing, and every watched
        HAProxy that serves `backend` has each task's first port UP in it."""
        app = self.client.app(app_id)
        if not ready(app):
            return False
        tasks = [t for t in self.client.tasks(app_id) if t.get("state", "TASK_RUNNING") == "TASK_RUNNING"]
        if len(tasks) < wanted:
            return False
        ids = {str(t["id"]) for t in tasks}
        with reaching("Consul", address_of(self.drain.consul)):
            _, entries = self.drain.consul.health.service(service_name(app_id), passing=True)
        if not ids <= {(e.get("Service") or {}).get("Meta", {}).get("mesos_task_id") for e in entries}:
            return False
        addresses = {f"{t.get('host')}:{(t.get('ports') or [0])[0]}" for t in tasks}
        for source in self.drain.haproxies:
            try:
                rows = parse_stat_csv(source.read())
            except WharfError as exc:
                self.say(f"HAProxy at {source.name} not read: {describe(exc)}")
                return False
            if routed(rows, backend, addresses) is False:
                return False
        return True

    def _remove(self, app_id: str) -> None:
        """Delete `app_id` and wait until Marathon has it gone, the deployment that kills its tasks
        included (the id is locked until then: the next colour may be this one)."""
        self.client.delete_app(app_id, force=True)

        def gone() -> bool:
            busy = any(app_id in (d.get("affectedApps") or []) for d in self.client.deployments())
            return not busy and self.client.app(app_id) is None

        wait_until(gone, max(60.0, self.timeout), self.poll, f"{app_id} to be deleted", clock=self.clock)
        self.say(f"{app_id}: deleted")
