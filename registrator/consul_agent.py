"""The local Consul agent as the registrator uses it (py-consul); the ACL token is never logged."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import consul
from consul.callback import CB

from registrator.model import DRAIN_REASON, MAINTENANCE_PREFIX, Registered, Registration, listing


class Agent:
    """Register, deregister, drain and list services on one agent."""

    def __init__(self, consul_client: consul.Consul) -> None:
        self.c = consul_client

    def listing(self) -> dict[str, Registered]:
        """Every service on the agent (anyone's), with its maintenance state."""
        return listing(self.c.agent.services(), self.c.agent.checks())

    def register(self, reg: Registration) -> None:
        """Register `reg`, then remove the checks of an earlier registration that it no longer has.

        Not Consul's `replace-existing-checks`: that also removes a maintenance check, and a
        registration made again while someone drains the instance (`wharf apps scale`) would put
        it back in rotation."""
        body = reg.body()
        checks = [body["Check"]] if "Check" in body else body.get("Checks", [])
        self.c.agent.service.register(body["Name"], service_id=body["ID"], address=body["Address"],
                                      port=body["Port"], tags=body["Tags"], meta=body["Meta"],
                                      check=checks[0] if checks else None, extra_checks=checks[1:])
        wanted = {c.get("CheckID") for c in checks}
        held = self.c.agent.checks(filter_expr=f'ServiceID == "{_quoted(reg.id)}"')
        for check_id in held:
            if check_id not in wanted and not check_id.startswith(MAINTENANCE_PREFIX):
                self.c.agent.check.deregister(check_id)

    def in_catalog(self, regs: Sequence[Registration]) -> set[str]:
        """The ids of `regs` that Consul's catalog (the servers, not only this agent) holds with
        exactly their checks: the agent syncs each change on its own, in no set order. One read a
        service name."""
        confirmed = set()
        for name in sorted({r.name for r in regs}):
            _, entries = self.c.health.service(name)
            held = dict(_held_checks(e) for e in entries)
            confirmed |= {r.id for r in regs if r.name == name and held.get(r.id) == _check_ids(r)}
        return confirmed

    def deregister(self, service_id: str) -> None:
        self.c.agent.service.deregister(service_id)

    def maintenance(self, service_id: str, enable: bool, reason: str = DRAIN_REASON) -> None:
        self.c.agent.service.maintenance(service_id, "true" if enable else "false", reason if enable else None)

    def has_leader(self) -> bool:
        """Whether the agent's cluster has a leader: an agent that just started answers before it
        has one, and what is registered with it before that can be dropped as it finishes starting."""
        return bool(self.c.status.leader())

    def watch(self, content_hash: str | None, wait: str = "10s") -> tuple[str | None, dict[str, Any]]:
        """`GET /v1/agent/services`, blocking until its content hash differs from `content_hash`."""
        params = [("hash", content_hash), ("wait", wait)] if content_hash else []

        def read(response: Any) -> tuple[str | None, dict[str, Any]]:
            CB._status(response)  # noqa: SLF001 - the library's own status check
            return response.headers.get("X-Consul-ContentHash"), json.loads(response.body)

        return self.c.http.get(read, "/v1/agent/services", params=params,  # type: ignore[no-any-return]
                               headers=self.c.prepare_headers())


def _quoted(text: str) -> str:
    """`text` for a double-quoted string of Consul's filter language."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _check_ids(reg: Registration) -> set[str | None]:
    return {dict(c).get("CheckID") for c in reg.checks}


def _held_checks(entry: Mapping[str, Any]) -> tuple[str | None, set[str | None]]:
    """A `/v1/health/service` entry's service id and the ids of its own checks, maintenance aside."""
    sid = (entry.get("Service") or {}).get("ID")
    return sid, {c.get("CheckID") for c in entry.get("Checks") or ()
                 if c.get("ServiceID") == sid and not str(c.get("CheckID", "")).startswith(MAINTENANCE_PREFIX)}
