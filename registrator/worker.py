"""The registrator's state and its one worker: events in, Consul fixed, nothing dropped.

Two threads feed one queue and never wait on Consul (`registrator/watch.py`): `DockerWatcher`
(the container event stream; a `Resync` item on every connect) and `ConsulWatcher` (a blocking read
of the agent's services; a `ConsulCheck` when it answers again after failing, or when one of ours
is missing).
The worker (`Registrator.cycle`, run by the daemon) keeps the containers it knows and what it
wrote; an event only updates that state, then the affected containers are fixed in Consul.
When Consul fails the state stays right, so the next cycle reconciles instead of replaying.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from registrator.consul_agent import Agent
from registrator.marathon import MarathonHealth, TaskKilling, counted_healthy
from registrator.model import DockerContainer, Options, Registered, Registration
from registrator.reconcile import RegistrationPlan, reconcile
from registrator.services import HEALTHY_PHASE, desired
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger("wharf.registrator")
T = TypeVar("T")

REGISTRATIONS = Counter("wharf_registrator_registrations_total", "Services registered (or re-registered)")
DEREGISTRATIONS = Counter("wharf_registrator_deregistrations_total", "Services deregistered")
DRAINS = Counter("wharf_registrator_drains_total", "Services put into maintenance before their container stops")
FIXES = Counter("wharf_registrator_reconcile_fixes_total",
                "Changes a full reconcile had to make (a missed event or a lost registration)", ["kind"])
LAG = Histogram("wharf_registrator_event_lag_seconds", "From a Docker event to Consul holding its result",
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
EVENTS = Counter("wharf_registrator_docker_events_total", "Docker container events read", ["action"])
QUEUED = Gauge("wharf_registrator_queue_depth", "Items waiting for the worker")
RECONNECTS = Counter("wharf_registrator_reconnects_total", "Reconnections", ["to"])

#: signals that end a container: its `kill` event drains it (`docker kill -s HUP` does not)
STOP_SIGNALS = {"15", "9", "2", "3", "SIGTERM", "SIGKILL", "SIGINT", "SIGQUIT", "TERM", "KILL", "INT", "QUIT"}
DRAIN_LIMIT = 120.0  # default: a container still running this long after a stop signal is served again
RECONNECT = Retry(delay=0.05, backoff=2.0, max_delay=0.5, jitter=0.2)
WRITERS = 8  # parallel requests to the agent when a plan has many changes


def _each(do: Callable[[T], None], items: Sequence[T]) -> None:
    """`do` for every item: inline for one, else on WRITERS threads; every item is tried and the
    first failure is raised after (what succeeded is recorded, the rest is left for a reconcile)."""
    if len(items) <= 1:
        for item in items:
            do(item)
        return
    with ThreadPoolExecutor(min(WRITERS, len(items))) as pool:
        futures = [pool.submit(do, item) for item in items]
    for future in futures:
        future.result()  # the first failure, raised


@dataclass(frozen=True)
class DockerEvent:
    action: str
    id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time: float = 0.0  # when Docker emitted it (epoch seconds)


@dataclass(frozen=True)
class Resync:
    """Compare everything with Docker; `fresh`: re-inspect every container (after a reconnect)."""

    fresh: bool = False


@dataclass(frozen=True)
class ConsulCheck:
    """Compare what Consul holds with what it should (the agent came back, or lost ours)."""

    why: str


Item = DockerEvent | Resync | ConsulCheck | MarathonHealth | TaskKilling


class Registrator:
    """Containers known, registrations written, and the cycle that keeps Consul right."""

    def __init__(self, options: Options, docker: Any, agent: Agent,
                 lookup: Callable[[DockerContainer], Mapping[str, Any] | None] = lambda c: None,
                 resync_every: float = 0.0, drain_limit: float = DRAIN_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.docker = docker  # a docker.APIClient for inspect/list (the event stream has its own)
        self.agent = agent
        self.lookup = lookup
        self.resync_every = resync_every
        self.drain_limit = drain_limit
        self.clock = clock
        self.queue: queue.Queue[Item] = queue.Queue()
        self.containers: dict[str, DockerContainer] = {}
        self.draining: dict[str, float] = {}  # container id -> when the drain is lifted if still running
        self.written: dict[str, Registered] = {}  # ours in Consul, as we believe
        self.stamps: dict[str, int] = {}  # service id -> which write of ours put it there
        self._writes = 0
        self.foreign: set[str] = set()  # IDs someone else holds on the agent
        self.lock = threading.Lock()  # guards `written` against the Consul watcher's reads
        self.pending_full = True  # the first cycle reconciles everything
        self.pending_fresh = True
        self.consul_dirty = False
        self.touched: dict[str, float] = {}  # container id -> event time, for the lag metric
        self.healthy: dict[str, frozenset[str]] = {}  # app id -> tasks Marathon reports healthy
        self.apps: frozenset[str] = frozenset()  # Marathon apps with a container here (read by other threads)
        self.next_resync = clock() + resync_every if resync_every else float("inf")

    # --- deciding ------------------------------------------------------------------------------

    def wanted(self, container: DockerContainer) -> list[Registration]:
        """What `container` should have in Consul now, drains included."""
        app_id = container.env.get("MARATHON_APP_ID", "")
        healthy = counted_healthy(container.env.get("MESOS_TASK_ID", ""), self.healthy.get(app_id, frozenset()))
        if container.running:
            regs = desired(container, self.options, self.lookup(container), healthy)
            return [replace(r, drained=True) for r in regs] if container.id in self.draining else regs
        if self.options.deregister == "on-success" and container.exit_code != 0:
            # as registrator: a failed container keeps the services it had (not passing) until it
            # is removed; one that failed before it was ever registered gets none
            regs = desired(replace(container, running=True), self.options, self.lookup(container), healthy)
            with self.lock:
                kept = [replace(r, drained=True) for r in regs if r.id in self.written]
            return kept
        return []

    def all_wanted(self) -> list[Registration]:
        return [r for c in self.containers.values() for r in self.wanted(c)]

    def on_event(self, event: DockerEvent) -> None:
        """Update the known containers for one Docker event (Docker calls only, never Consul)."""
        EVENTS.labels(event.action).inc()
        cid = event.id
        if event.action == "create":
            self.inspect(cid)  # read ahead: a host-network container's start then needs no inspect
        elif event.action == "start" and self._known_at_create(cid):
            self.draining.pop(cid, None)
            self.containers[cid] = replace(self.containers[cid], running=True, exit_code=0)
        elif event.action in ("start", "unpause", "restart", "rename", "update"):
            self.draining.pop(cid, None)
            self.inspect(cid)
        elif event.action == "kill":
            if str(event.attributes.get("signal", "")).upper() in STOP_SIGNALS and cid in self.containers:
                self.draining[cid] = self.clock() + self.drain_limit
        elif event.action == "die":
            known = self.containers.get(cid)
            if known is not None:
                code = int(event.attributes.get("exitCode") or 0)
                self.containers[cid] = replace(known, running=False, exit_code=code)
            self.draining.pop(cid, None)
        elif event.action in ("pause",):
            self.inspect(cid)
        elif event.action == "destroy":
            self.containers.pop(cid, None)
            self.draining.pop(cid, None)
        else:
            return
        self.touched.setdefault(cid, event.time)

    def on_marathon(self, item: MarathonHealth | TaskKilling) -> None:
        """Follow Marathon's view: a task now healthy is registered again with its checks passing,
        one it kills is drained."""
        if isinstance(item, TaskKilling):
            for cid, c in self.containers.items():
                if c.running and c.env.get("MESOS_TASK_ID") == item.task_id and cid not in self.draining:
                    self.draining[cid] = self.clock() + self.drain_limit
                    self.touched.setdefault(cid, 0.0)
            return
        before = self.healthy
        if item.whole:
            self.healthy = dict(item.healthy)
        else:
            ids = before.get(item.app_id, frozenset())
            self.healthy = {**before, item.app_id: ids | {item.task} if item.alive else ids - {item.task}}
        none: frozenset[str] = frozenset()
        for cid, c in self.containers.items():
            app_id, task_id = c.env.get("MARATHON_APP_ID", ""), c.env.get("MESOS_TASK_ID", "")
            was, now = (counted_healthy(task_id, view.get(app_id, none)) for view in (before, self.healthy))
            if was != now:
                self.touched.setdefault(cid, 0.0)

    def runs(self, app_id: str) -> bool:
        """Whether a container here is a task of Marathon app `app_id` (safe from any thread)."""
        return app_id in self.apps

    def _known_at_create(self, cid: str) -> bool:
        """Whether what was read at `create` still tells all: with host networking the ports come
        from the image and the config, fixed at create; published ports and container addresses
        are only known once the container runs."""
        known = self.containers.get(cid)
        return known is not None and known.network_mode == "host" and not self.options.internal

    def inspect(self, cid: str) -> DockerContainer | None:
        import docker.errors

        try:
            data = self.docker.inspect_container(cid)
        except docker.errors.NotFound:
            self.containers.pop(cid, None)
            return None
        try:
            container = DockerContainer.from_inspect(data)
        except (KeyError, TypeError, ValueError) as exc:  # one odd container must not stop the rest
            log.warning("container not understood; skipped", extra=fields(container=cid[:12], error=repr(exc)))
            self.containers.pop(cid, None)
            return None
        self.containers[cid] = container
        return container

    # --- doing ---------------------------------------------------------------------------------

    def cycle(self, block: float = 0.2) -> RegistrationPlan | None:
        """Take what is queued, update the state, fix Consul. Raises on a failure (state kept)."""
        why: set[str] = set()
        for item in self._take(block):
            if isinstance(item, Resync):
                self.pending_full = True
                self.pending_fresh |= item.fresh
            elif isinstance(item, ConsulCheck):
                if item.why not in why:
                    log.info("checking consul", extra=fields(why=item.why))
                why.add(item.why)
                self.consul_dirty = True
            elif isinstance(item, (MarathonHealth, TaskKilling)):
                self.on_marathon(item)
            else:
                try:
                    self.on_event(item)
                except Exception:  # Docker did not answer: what the event said is re-read from it
                    self.pending_full = self.pending_fresh = True
                    raise
        now = self.clock()
        self.apps = frozenset(a for c in self.containers.values() if (a := c.env.get("MARATHON_APP_ID")))
        for cid, until in list(self.draining.items()):
            if now >= until:
                del self.draining[cid]
                self.touched.setdefault(cid, 0.0)
        if now >= self.next_resync:
            self.pending_full = True
            self.next_resync = now + self.resync_every
        if self.pending_full:
            self.refresh_from_docker(self.pending_fresh)
            self.pending_full = self.pending_fresh = False
            self.consul_dirty = True
        try:
            if self.consul_dirty:
                plan = self.reconcile_consul()
                self.consul_dirty = False
            elif self.touched:
                plan = self.apply_touched()
            else:
                return None
        except Exception:
            self.consul_dirty = True
            raise
        self._observe_lag()
        return plan

    def _take(self, block: float) -> list[Item]:
        items: list[Item] = []
        try:
            items.append(self.queue.get(timeout=block) if block > 0 else self.queue.get_nowait())
            while True:
                items.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        QUEUED.set(self.queue.qsize())
        return items

    def refresh_from_docker(self, fresh: bool) -> None:
        """Re-read the containers: all of them when `fresh`, else only the unknown or changed ones."""
        listed = {c["Id"]: c.get("State") for c in self.docker.containers(all=True)}
        for cid in list(self.containers):
            if cid not in listed:
                del self.containers[cid]
                self.draining.pop(cid, None)
        for cid, state in listed.items():
            known = self.containers.get(cid)
            if fresh or known is None or known.running != (state == "running"):
                self.inspect(cid)

    def reconcile_consul(self) -> RegistrationPlan:
        """Compare the agent's listing with every wanted registration and fix both directions."""
        held = self.agent.listing()
        self.foreign = {sid for sid, r in held.items() if r.owner != self.options.owner}
        with self.lock:
            self.written = {sid: r for sid, r in held.items() if r.owner == self.options.owner}
            self.stamps = {sid: stamp for sid, stamp in self.stamps.items() if sid in self.written}
        plan = reconcile(self.all_wanted(), held, self.options.owner)
        if not plan.empty:
            for kind, items in (("register", plan.register), ("deregister", plan.deregister),
                                ("drain", plan.drain), ("undrain", plan.undrain)):
                if items:
                    FIXES.labels(kind).inc(len(items))
            log.info("reconciled", extra=fields(registered=len(plan.register), deregistered=len(plan.deregister),
                                                drained=len(plan.drain), undrained=len(plan.undrain)))
        self.execute(plan)
        self.touched.clear()
        return plan

    def apply_touched(self) -> RegistrationPlan:
        """Fix only the containers that events touched, against what we wrote."""
        ids = set(self.touched)
        wanted = [r for cid in ids if (c := self.containers.get(cid)) for r in self.wanted(c)]
        with self.lock:
            mine = {sid: r for sid, r in self.written.items() if r.container_id in ids}
        wanted_ids = {r.id for r in wanted}
        for sid in wanted_ids & self.foreign:  # someone else's: keep reporting it as a conflict
            mine[sid] = Registered(sid, None, None, None)
        plan = reconcile(wanted, mine, self.options.owner)
        self.execute(plan)
        return plan

    def execute(self, plan: RegistrationPlan) -> None:
        """Make the plan's changes, phase by phase (register, drain, undrain, deregister); within a
        phase the agent is asked in parallel, so a full reconcile costs round trips / WRITERS."""
        for sid in plan.conflicts:
            log.warning("service id held by another owner; left alone", extra=fields(service_id=sid))
        _each(self._register, plan.register)
        self._confirm([r for r in plan.register if any(str(dict(c).get("CheckID")).endswith(HEALTHY_PHASE)
                                                       for c in r.checks)])
        _each(lambda sid: self._maintain(sid, True), plan.drain)
        _each(lambda sid: self._maintain(sid, False), plan.undrain)
        _each(self._deregister, plan.deregister)

    def _register(self, reg: Registration) -> None:
        self.agent.register(reg)
        REGISTRATIONS.inc()
        with self.lock:
            self.written[reg.id] = Registered.written(reg, self.options.owner, False)
            self._writes += 1
            self.stamps[reg.id] = self._writes
        log.info("registered", extra=fields(service_id=reg.id, service=reg.name, address=f"{reg.address}:{reg.port}"))

    def _confirm(self, ready: list[Registration], limit: float = 0.25) -> None:
        """Wait (up to `limit` s) until Consul's catalog holds the instances Marathon just found healthy:
        it kills the ones they replace at once; a drain first in the catalog would empty the route."""
        deadline = time.monotonic() + limit
        pending = list(ready)
        while pending and time.monotonic() < deadline:
            confirmed = self.agent.in_catalog(pending)
            pending = [r for r in pending if r.id not in confirmed]
            if pending:
                time.sleep(0.005)
        if pending:
            log.info("not yet in the catalog; going on", extra=fields(services=len(pending)))

    def _maintain(self, sid: str, drained: bool) -> None:
        self.agent.maintenance(sid, drained)
        if drained:
            DRAINS.inc()
            log.info("drained", extra=fields(service_id=sid))
        self._mark(sid, drained)

    def _deregister(self, sid: str) -> None:
        with self.lock:  # forgotten first, so the Consul watcher never takes it for a lost one
            self.written.pop(sid, None)
            self.stamps.pop(sid, None)
        self.agent.deregister(sid)
        DEREGISTRATIONS.inc()
        log.info("deregistered", extra=fields(service_id=sid))

    def _mark(self, sid: str, maintenance: bool) -> None:
        with self.lock:
            if sid in self.written:
                self.written[sid] = replace(self.written[sid], maintenance=maintenance)

    def _observe_lag(self) -> None:
        now = time.time()
        for stamp in self.touched.values():
            if stamp:
                LAG.observe(max(0.0, now - stamp))
        self.touched.clear()

    def written_ids(self) -> dict[str, int]:
        """The services we wrote, each with the stamp of the write (for `ours_missing`)."""
        with self.lock:
            return {sid: self.stamps.get(sid, 0) for sid in self.written}

    def ours_missing(self, before: Mapping[str, int], services: Iterable[str]) -> str | None:
        """A service we wrote before `before` was taken, and have not written or removed since,
        that a listing asked for afterwards lacks (for the Consul watcher: something removed it)."""
        present = set(services)
        with self.lock:
            return next((sid for sid, stamp in before.items() if sid not in present and sid in self.written
                         and self.stamps.get(sid, 0) == stamp), None)
