"""The whole state of the Consul stand-in, as one pure object: no threads, no sockets.

:class:`ConsulState` plays both the local agent (it names service checks, keeps TTL timers,
reaps services whose checks stay critical) and the single server (catalog, KV, sessions,
and the raft-like index). Time comes from an injected ``clock``; :meth:`ConsulState.tick`
applies every timer that has expired and says when the next one is due. The HTTP layer
serialises access with one lock.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from devcluster.consul.catalog import Catalog
from devcluster.consul.decode import CheckRequest, SessionRequest
from devcluster.consul.kv import KVError, KVStore, TxnOp
from devcluster.consul.model import (
    CRITICAL,
    NODE_MAINT_ID,
    PASSING,
    SERF_CHECK_ID,
    SERVICE_MAINT_PREFIX,
    Check,
    CheckSpec,
    Indexes,
    Limits,
    Node,
    Service,
    Session,
    format_duration,
    frozen_map,
    parse_duration,
)

CONSUL_VERSION = "1.15.4"  # the Consul release whose API the stand-in claims to speak
DEFAULT_LIMITS = Limits()
ALL_TABLES = ("nodes", "services", "checks", "kvs", "tombstones", "sessions")


class NotFound(Exception):
    """Answered with 404 and this text."""


class StateError(Exception):
    """An error Consul answers with 500 and this text."""


def session_json(session: Session) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ID": session.id,
        "Name": session.name,
        "Node": session.node,
        "LockDelay": round(session.lock_delay * 1e9),
        "Behavior": session.behavior,
        "TTL": session.ttl,
        "NodeChecks": list(session.node_checks) or None,
        "ServiceChecks": [{"ID": c, "Namespace": ""} for c in session.service_checks] or None,
    }
    if session.legacy_checks:
        data["Checks"] = list(session.legacy_checks)  # deprecated since 1.7, echoed when sent
    data["CreateIndex"] = session.create_index
    data["ModifyIndex"] = session.modify_index
    return data


class ConsulState:
    def __init__(
        self,
        node_name: str = "devcluster",
        datacenter: str = "dc1",
        address: str = "127.0.0.1",
        *,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_name, self.datacenter, self.address = node_name, datacenter, address
        self.node_id = str(uuid.uuid4())
        self.limits = limits
        self.clock = clock
        self.ix = Indexes()
        self._boot()

    def _boot(self) -> None:
        """Start as a fresh agent at the next index; the index itself never goes back."""
        idx = self.ix.next()
        node = Node(
            self.node_id,
            self.node_name,
            self.address,
            self.datacenter,
            frozen_map({"consul-network-segment": ""}),
            idx,
            idx,
        )
        self.catalog = Catalog(self.ix, node)
        self.kv = KVStore(self.ix)
        self.sessions: dict[str, Session] = {}
        self.session_expiry: dict[str, float] = {}
        self.ttl_deadline: dict[str, float] = {}
        self.critical_since: dict[str, float] = {}
        self.catalog.put_check(
            idx, Check(SERF_CHECK_ID, "Serf Health Status", PASSING, output="Agent alive and reachable")
        )
        meta = {
            "raft_version": "3",
            "serf_protocol_current": "2",
            "serf_protocol_max": "5",
            "serf_protocol_min": "1",
            "version": CONSUL_VERSION,
        }
        self.catalog.put_service(idx, Service("consul", "consul", port=8300, meta=frozen_map(meta), local=False))
        self.catalog.extinction_index = idx
        self.ix.touch(idx, *ALL_TABLES)

    def reset(self) -> None:
        """Drop services, checks, KV and sessions, as a restarted agent with a wiped data dir would."""
        self._boot()

    # -- agent: services and checks ------------------------------------------------------------

    def register_service(
        self, service: Service, checks: list[CheckRequest], replace_existing_checks: bool = False
    ) -> None:
        idx, now = self.ix.next(), self.clock()
        self.catalog.put_service(idx, _with_default_tagged_addresses(service))
        ids = []
        for position, req in enumerate(checks):
            check_id = req.id or (f"service:{service.id}" + (f":{position + 1}" if len(checks) > 1 else ""))
            name = req.name or f"Service '{service.name}' check"
            self._put_check(idx, replace(req, id=check_id, name=name, service_id=service.id), now)
            ids.append(check_id)
        if replace_existing_checks:
            stale = [c.id for c in self.catalog.checks.values() if c.service_id == service.id and c.id not in ids]
            for check_id in stale:
                if not check_id.startswith(SERVICE_MAINT_PREFIX):
                    self._drop_check(idx, check_id)

    def register_check(self, req: CheckRequest) -> None:
        if req.service_id:
            service = self.catalog.services.get(req.service_id)
            if service is None or not service.local:
                raise StateError(f'ServiceID "{req.service_id}" does not exist')
        self._put_check(self.ix.next(), replace(req, id=req.id or req.name), self.clock())

    def _put_check(self, idx: int, req: CheckRequest, now: float) -> None:
        spec = req.spec
        if spec.kind in ("http", "tcp"):
            spec = replace(
                spec,
                interval=max(spec.interval, self.limits.min_check_interval),
                timeout=spec.timeout or self.limits.default_check_timeout,
            )
        existing = self.catalog.checks.get(req.id)
        keep = existing is not None and existing.spec.kind == spec.kind and req.status is None
        status = existing.status if keep and existing else (req.status or CRITICAL)
        output = existing.output if keep and existing else ""
        check = Check(req.id, req.name, status, req.notes, output, req.service_id, spec, definition_index=idx)
        self.catalog.put_check(idx, check)
        if spec.kind == "ttl":
            self.ttl_deadline[req.id] = now + spec.ttl
        else:
            self.ttl_deadline.pop(req.id, None)
        self._note_status(idx, req.id, status, now)

    def _note_status(self, idx: int, check_id: str, status: str, now: float) -> None:
        if status != CRITICAL:
            self.critical_since.pop(check_id, None)
            return
        self.critical_since.setdefault(check_id, now)
        for session in [s for s in self.sessions.values() if check_id in s.node_checks + s.service_checks]:
            self._invalidate_session(idx, session.id, now)

    def _drop_check(self, idx: int, check_id: str) -> None:
        self.catalog.remove_check(idx, check_id)
        self._forget_check(idx, check_id)

    def _forget_check(self, idx: int, check_id: str) -> None:
        self.ttl_deadline.pop(check_id, None)
        self.critical_since.pop(check_id, None)
        for session in [s for s in self.sessions.values() if check_id in s.node_checks + s.service_checks]:
            self._invalidate_session(idx, session.id, self.clock())

    def deregister_service(self, service_id: str) -> None:
        service = self.catalog.services.get(service_id)
        if service is None or not service.local:
            raise NotFound(
                f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.'
            )
        idx = self.ix.next()
        for check_id in self.catalog.remove_service(idx, service_id):
            self._forget_check(idx, check_id)

    def deregister_check(self, check_id: str) -> None:
        if check_id not in self.catalog.checks or check_id == SERF_CHECK_ID:
            raise NotFound(f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.')
        self._drop_check(self.ix.next(), check_id)

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """``/v1/agent/check/pass|warn|fail/{id}`` and ``/v1/agent/check/update/{id}``."""
        check = self.catalog.checks.get(check_id)
        if check is None or check_id == SERF_CHECK_ID:
            raise NotFound(f'Unknown check ID "{check_id}". Ensure that the check ID is passed, not the check name.')
        if check.spec.kind != "ttl":
            raise StateError(f'CheckID "{check_id}" does not have associated TTL')
        now = self.clock()
        self.ttl_deadline[check_id] = now + check.spec.ttl
        self._set_status(check_id, status, output, now)

    def record_probe(self, check_id: str, definition_index: int, status: str, output: str) -> None:
        """A result from an HTTP/TCP probe; ignored if the check was removed or redefined since."""
        check = self.catalog.checks.get(check_id)
        if check is not None and check.definition_index == definition_index:
            self._set_status(check_id, status, output, self.clock())

    def _set_status(self, check_id: str, status: str, output: str, now: float) -> None:
        idx = self.ix.next()
        if self.catalog.set_status(idx, check_id, status, output[: self.limits.check_output_max]):
            self._note_status(idx, check_id, status, now)

    def probes(self) -> dict[str, tuple[int, CheckSpec]]:
        """The checks the agent must run itself: check ID -> (definition index, spec)."""
        return {
            c.id: (c.definition_index, c.spec) for c in self.catalog.checks.values() if c.spec.kind in ("http", "tcp")
        }

    def set_maintenance(self, enable: bool, reason: str, service_id: str = "") -> None:
        """Node (or service) maintenance mode: a critical check that fails every health query."""
        if service_id:
            service = self.catalog.services.get(service_id)
            if service is None or not service.local:
                raise NotFound(
                    f'Unknown service ID "{service_id}". Ensure that the service ID is passed, not the service name.'
                )
            check_id, name, what = SERVICE_MAINT_PREFIX + service_id, "Service Maintenance Mode", "service"
        else:
            check_id, name, what = NODE_MAINT_ID, "Node Maintenance Mode", "node"
        if not enable:
            if check_id in self.catalog.checks:
                self._drop_check(self.ix.next(), check_id)
            return
        if check_id in self.catalog.checks:
            return
        notes = (
            reason
            or f"Maintenance mode is enabled for this {what}, but no reason was provided. This is a default message."
        )
        req = CheckRequest(check_id, name, notes, service_id, CRITICAL, CheckSpec(kind="maintenance"))
        self._put_check(self.ix.next(), req, self.clock())

    # -- sessions ------------------------------------------------------------------------------

    def create_session(self, req: SessionRequest) -> str:
        node = req.node or self.node_name
        if node != self.node_name:
            raise StateError("Missing node registration")
        if req.behavior not in ("release", "delete"):
            raise StateError(f"Invalid Behavior setting '{req.behavior}'")
        ttl = 0.0
        if req.ttl:
            try:
                ttl = parse_duration(req.ttl)
            except ValueError as err:
                raise StateError(f"Session TTL '{req.ttl}' invalid: {err}") from err
            low, high = self.limits.session_ttl_min, self.limits.session_ttl_max
            if ttl != 0 and not low <= ttl <= high:
                bounds = f"[{format_duration(low)}={format_duration(high)}]"
                raise StateError(f"Invalid Session TTL '{round(ttl * 1e9)}', must be between {bounds}")
        node_checks = (SERF_CHECK_ID,) if req.node_checks is None else req.node_checks
        for check_id in node_checks + req.service_checks:
            check = self.catalog.checks.get(check_id)
            if check is None:
                raise StateError(f"Missing check '{check_id}' registration")
            if check.status == CRITICAL:
                raise StateError(f"Check '{check_id}' is in critical state")
        idx, session_id = self.ix.next(), str(uuid.uuid4())
        lock_delay = min(req.lock_delay, self.limits.max_lock_delay)
        session = Session(
            session_id,
            req.name,
            node,
            lock_delay,
            req.behavior,
            req.ttl,
            node_checks,
            req.service_checks,
            req.legacy_checks,
            idx,
            idx,
        )
        self.sessions[session_id] = session
        self.ix.touch(idx, "sessions")
        if ttl:
            self.session_expiry[session_id] = self.clock() + ttl * self.limits.session_ttl_multiplier
        return session_id

    def destroy_session(self, session_id: str) -> None:
        if session_id in self.sessions:
            self._invalidate_session(self.ix.next(), session_id, self.clock())

    def renew_session(self, session_id: str) -> Session | None:
        session = self.sessions.get(session_id)
        if session is not None and session.ttl:
            ttl = parse_duration(session.ttl)
            self.session_expiry[session_id] = self.clock() + ttl * self.limits.session_ttl_multiplier
        return session

    def _invalidate_session(self, idx: int, session_id: str, now: float) -> None:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        self.session_expiry.pop(session_id, None)
        delay_until = now + session.lock_delay if session.lock_delay > 0 else 0.0
        self.kv.invalidate_session(idx, session_id, session.behavior == "delete", delay_until)
        self.ix.touch(idx, "sessions")

    def session_info(self, session_id: str) -> tuple[int, list[dict[str, Any]]]:
        session = self.sessions.get(session_id)
        return self.ix.table("sessions"), [session_json(session)] if session else []

    def session_list(self, node: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        chosen = [s for s in self.sessions.values() if node is None or s.node == node]
        return self.ix.table("sessions"), [session_json(s) for s in sorted(chosen, key=lambda s: s.create_index)]

    # -- KV ------------------------------------------------------------------------------------

    def kv_put(
        self,
        key: str,
        value: bytes | None,
        flags: int = 0,
        *,
        cas: int | None = None,
        acquire: str = "",
        release: str = "",
    ) -> bool:
        idx, now = self.ix.next(), self.clock()
        try:
            if acquire:
                return self.kv.lock(idx, key, value, flags, acquire, self.sessions, now) is not None
            if release:
                return self.kv.unlock(idx, key, value, flags, release) is not None
        except KVError as err:
            raise StateError(str(err)) from err
        if cas is not None:
            return self.kv.cas(idx, key, value, flags, cas) is not None
        self.kv.set(idx, key, value, flags)
        return True

    def kv_delete(self, key: str, *, recurse: bool = False, cas: int | None = None) -> bool:
        idx = self.ix.next()
        if cas is not None:
            return self.kv.delete_cas(idx, key, cas)
        if recurse:
            self.kv.delete_tree(idx, key)
        else:
            self.kv.delete(idx, key)
        return True

    def txn(self, ops: list[TxnOp]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.kv.txn(self.ix.next(), ops, self.sessions, self.clock())

    # -- timers --------------------------------------------------------------------------------

    def tick(self) -> float | None:
        """Apply expired timers (TTL checks, TTL sessions, critical-service reaping, lock
        delays); returns the clock time of the next timer, or None if there is none."""
        now = self.clock()
        for check_id, deadline in list(self.ttl_deadline.items()):
            check = self.catalog.checks.get(check_id)
            if deadline <= now and check is not None:
                del self.ttl_deadline[check_id]
                if check.status != CRITICAL:
                    output = "TTL expired" + (
                        f" (last output before timeout follows): {check.output}" if check.output else ""
                    )
                    self._set_status(check_id, CRITICAL, output, now)
        for session_id, deadline in list(self.session_expiry.items()):
            if deadline <= now:
                self._invalidate_session(self.ix.next(), session_id, now)
        for service_id, deadline in self._reap_deadlines().items():
            if deadline <= now and service_id in self.catalog.services:
                self.deregister_service(service_id)
        self.kv.expire_lock_delays(now)
        pending = [*self.ttl_deadline.values(), *self.session_expiry.values(), *self._reap_deadlines().values()]
        return min(pending, default=None)

    def _reap_deadlines(self) -> dict[str, float]:
        deadlines: dict[str, float] = {}
        for check in self.catalog.checks.values():
            since = self.critical_since.get(check.id)
            if check.spec.deregister_after and check.service_id and since is not None:
                due = since + max(check.spec.deregister_after, self.limits.min_deregister_after)
                deadlines[check.service_id] = min(due, deadlines.get(check.service_id, due))
        return deadlines


def _with_default_tagged_addresses(service: Service) -> Service:
    """Consul adds lan_ipv4/wan_ipv4 (or _ipv6) tagged addresses for a literal service IP."""
    try:
        family = "ipv4" if ipaddress.ip_address(service.address).version == 4 else "ipv6"
    except ValueError:
        return service
    tagged = dict(service.tagged_addresses)
    for scope in ("lan", "wan"):
        tagged.setdefault(f"{scope}_{family}", (service.address, service.port))
    return replace(service, tagged_addresses=frozen_map(tagged))
