"""The Mesos master's ledger: agents and what their tasks use, frameworks and their tasks, offers.

:class:`Ledger` keeps the books and changes them for what does not come from a framework's call:
an agent's status report (forwarded reliably, retried until acknowledged) and time (failovers
expire, offers expire, free resources are offered). Host ports a task held are kept out of offers
for ``port_quarantine`` seconds once it ends, so that a port a dead task used is not handed to a new
one at once (frameworks such as Marathon pick ports at random from large ranges, so in a real
cluster a freed port rarely comes back within seconds). Like :class:`devcluster.mesos.master.Master`,
which adds the scheduler API's calls, it does no I/O and reads no clock: every method takes ``now``
and returns :class:`Effects`.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from devcluster.mesos import offers as alloc
from devcluster.mesos.model import (
    MAX_COMPLETED_FRAMEWORKS,
    MAX_RETRY,
    Effects,
    Framework,
    Kill,
    Offer,
    StatusReport,
    Task,
    merge,
)
from devcluster.mesos.offers import AgentInfo
from devcluster.mesos.protocol import TERMINAL_STATES, event, task_status
from devcluster.mesos.resources import Resources


class Ledger:
    """Agents, frameworks, tasks and offers; what agents report and what time does. `Master` adds the calls."""

    def __init__(self, master_id: str, agents: tuple[AgentInfo, ...], master_info: dict[str, Any], *,
                 heartbeat_interval: float = 15.0, update_retry: float = 10.0,
                 offer_timeout: float | None = None, started: float = 0.0, port_quarantine: float = 0.0) -> None:
        self.id = master_id
        self.info = master_info
        self.agents = {a.id: a for a in agents}
        self.heartbeat_interval = heartbeat_interval
        self.update_retry = update_retry
        self.offer_timeout = offer_timeout
        self.started = started
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: deque[Framework] = deque(maxlen=MAX_COMPLETED_FRAMEWORKS)
        self.offers: dict[str, Offer] = {}
        self.used = {a.id: Resources() for a in agents}
        self.port_quarantine = port_quarantine
        self.quarantined: list[tuple[str, Resources, float]] = []  # (agent id, freed ports, held until)
        self._total = sum((a.total for a in agents), Resources())
        self._next_framework = self._next_offer = 0

    # --- agents ---------------------------------------------------------------------------

    def agent_update(self, report: StatusReport, now: float) -> Effects:
        """An agent's news about a task: record it, free resources when terminal, forward it reliably."""
        effects = Effects()
        framework = self.frameworks.get(report.framework_id)
        task = framework.tasks.get(report.task_id) if framework else None
        if framework is None or task is None or task.state in TERMINAL_STATES:
            return effects
        if report.state == "TASK_KILLING" and not framework.capable("TASK_KILLING_STATE"):
            return effects
        task.state = report.state
        status = task_status(report.task_id, report.state, task.agent_id, source=report.source, timestamp=now,
                             reason=report.reason, message=report.message, uuid=uuid.uuid4().bytes,
                             container_status=report.container_status)
        task.latest = {k: v for k, v in status.items() if k != "uuid"}
        task.history.append({"state": report.state, "timestamp": now,
                             **({"container_status": report.container_status} if report.container_status else {})})
        if report.state in TERMINAL_STATES:
            self._release(task, now)
        task.pending.append(status)
        if len(task.pending) == 1:
            self._send_head(framework, task, now, effects)
        return effects

    # --- time -----------------------------------------------------------------------------

    def tick(self, now: float) -> Effects:
        """Everything that happens with time: failovers expire, updates are retried, offers made."""
        effects = Effects()
        for framework in list(self.frameworks.values()):
            if framework.failover_deadline is not None and framework.failover_deadline <= now:
                merge(effects, self._remove_framework(framework, now))
                continue
            if framework.connected:
                for task in framework.tasks.values():
                    if task.pending and now >= task.sent_at + self._retry_delay(task):
                        task.attempts += 1
                        self._send_head(framework, task, now, effects, retry=True)
            framework.filters = {a: f for a, f in framework.filters.items() if f.until > now}
        self.quarantined = [q for q in self.quarantined if q[2] > now]
        if self.offer_timeout is not None:
            for offer in [o for o in self.offers.values() if o.created + self.offer_timeout <= now]:
                del self.offers[offer.id]
                effects.events.append((offer.framework_id, event("RESCIND", {"offer_id": {"value": offer.id}})))
        merge(effects, self.allocate(now))
        return effects

    def next_deadline(self) -> float | None:
        """When ``tick`` next has timed work to do (None: only a call or an agent can change things)."""
        times: list[float] = []
        for framework in self.frameworks.values():
            if framework.failover_deadline is not None:
                times.append(framework.failover_deadline)
            if framework.connected:
                times += [t.sent_at + self._retry_delay(t) for t in framework.tasks.values() if t.pending]
            times += [f.until for f in framework.filters.values()]
        if self.offer_timeout is not None:
            times += [o.created + self.offer_timeout for o in self.offers.values()]
        times += [until for _, _, until in self.quarantined]
        return min(times, default=None)

    def allocate(self, now: float) -> Effects:
        """Offer each agent's free resources to the neediest framework that wants them."""
        effects = Effects()
        wanting = [f for f in self.frameworks.values() if f.connected and not f.suppressed]
        if not wanting:
            return effects
        # DRF shares are only needed to choose between frameworks; summing every task's resources is
        # what a tick would otherwise spend its time on with thousands of tasks and one framework.
        allocated: dict[str, Resources] | None = None
        total = self.total()
        on_offer: dict[str, Resources] = {}
        for held in self.offers.values():
            on_offer[held.agent_id] = on_offer.get(held.agent_id, Resources()) + held.resources
        batches: dict[str, list[dict[str, Any]]] = {}
        for agent in self.agents.values():
            free = agent.total - self.used[agent.id] if not self.used[agent.id].is_empty() else agent.total
            if agent.id in on_offer:
                free = free - on_offer[agent.id]
            quarantined = self.held_ports(agent.id, now)
            if not quarantined.is_empty():
                free = free - quarantined
            if not alloc.worth_offering(free):
                continue
            candidates = [f.id for f in wanting if not alloc.filters_out(f.filters.get(agent.id), free, now)]
            if len(candidates) > 1 and allocated is None:
                allocated = {f.id: self._allocated(f.id) for f in wanting}
            chosen = candidates[0] if len(candidates) == 1 else alloc.pick_framework(
                candidates, allocated or {}, total, {f.id: f.last_offered for f in wanting})
            if chosen is None:
                continue
            framework = self.frameworks[chosen]
            self._next_offer += 1
            offer = Offer(f"{self.id}-O{self._next_offer}", chosen, agent.id, free, now)
            self.offers[offer.id] = offer
            if allocated is not None:
                allocated[chosen] = allocated[chosen] + free
            framework.last_offered = now + len(batches.get(chosen, ())) * 1e-6
            batches.setdefault(chosen, []).append(alloc.offer_json(offer.id, chosen, agent, free, framework.role))
        for framework_id, offers in batches.items():
            effects.events.append((framework_id, event("OFFERS", {"offers": offers})))
        return effects

    # --- views ----------------------------------------------------------------------------

    def total(self) -> Resources:
        return self._total

    def held_ports(self, agent_id: str, now: float) -> Resources:
        """The host ports of the agent's ended tasks that are still in quarantine at ``now``."""
        return sum((ports for agent, ports, until in self.quarantined if agent == agent_id and until > now),
                   Resources())

    def offered(self, agent_id: str | None = None, framework_id: str | None = None) -> Resources:
        return sum((o.resources for o in self.offers.values()
                    if agent_id in (None, o.agent_id) and framework_id in (None, o.framework_id)), Resources())

    def free(self, agent_id: str) -> Resources:
        return self.agents[agent_id].total - self.used[agent_id] - self.offered(agent_id)

    def task_resources(self, framework_id: str) -> Resources:
        framework = self.frameworks[framework_id]
        return sum((t.spec.resources for t in framework.tasks.values() if t.state not in TERMINAL_STATES),
                   Resources())

    # --- helpers --------------------------------------------------------------------------

    def _allocated(self, framework_id: str) -> Resources:
        return self.task_resources(framework_id) + self.offered(framework_id=framework_id)

    def _release(self, task: Task, now: float) -> None:
        """Give back what an ended task held; its host ports stay out of offers for ``port_quarantine``."""
        self.used[task.agent_id] = self.used[task.agent_id] - task.spec.resources
        ports = task.spec.resources.ranges.get("ports")
        if ports and self.port_quarantine > 0:
            self.quarantined.append((task.agent_id, Resources({}, {"ports": ports}), now + self.port_quarantine))

    def _retry_delay(self, task: Task) -> float:
        return min(self.update_retry * (2 ** task.attempts), MAX_RETRY)

    def _recover_offers(self, framework: Framework) -> None:
        for offer_id in [o.id for o in self.offers.values() if o.framework_id == framework.id]:
            del self.offers[offer_id]

    def _send_head(self, framework: Framework, task: Task, now: float, effects: Effects, retry: bool = False) -> None:
        task.sent_at = now
        if not retry:
            task.attempts = 0
        if framework.connected:
            effects.events.append((framework.id, event("UPDATE", {"status": task.pending[0]})))

    def _remove_framework(self, framework: Framework, now: float) -> Effects:
        """Kill the framework's tasks, free what they held and forget it (TEARDOWN, failover expiry)."""
        effects = Effects()
        self._recover_offers(framework)
        for task in framework.tasks.values():
            if task.state not in TERMINAL_STATES:
                effects.kills.append(Kill(framework.id, task.spec.task_id, task.spec.kill_grace))
                self._release(task, now)
                task.state = "TASK_KILLED"
                task.history.append({"state": "TASK_KILLED", "timestamp": now})
            task.pending.clear()
            framework.completed.append(task)
        framework.tasks.clear()
        framework.failover_deadline = None
        framework.unregistered = framework.unregistered or now
        del self.frameworks[framework.id]
        self.completed_frameworks.append(framework)
        return effects
