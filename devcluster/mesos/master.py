"""The Mesos master's state machine: frameworks, offers, filters, tasks and status updates.

:class:`Master` does no I/O, starts no threads and reads no clock: every method takes ``now``
(seconds since the epoch, as TaskStatus.timestamp carries) and returns :class:`Effects` —
events for frameworks' streams, tasks for the agents to launch or kill, streams to close.
The HTTP layer applies them under one lock.
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
    FrameworkRemoved,
    Kill,
    Launch,
    Offer,
    StatusReport,
    Task,
    merge,
)
from devcluster.mesos.offers import AgentInfo, Filter
from devcluster.mesos.protocol import (
    TERMINAL_STATES,
    BadCall,
    TaskSpec,
    event,
    grace_seconds,
    ids,
    parse_task,
    refuse_seconds,
    task_status,
)
from devcluster.mesos.resources import Resources


class Master:
    """The whole master: agents are fixed at construction; everything else changes by calls."""

    def __init__(self, master_id: str, agents: tuple[AgentInfo, ...], master_info: dict[str, Any], *,
                 heartbeat_interval: float = 15.0, update_retry: float = 10.0,
                 offer_timeout: float | None = None, started: float = 0.0) -> None:
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
        self._total = sum((a.total for a in agents), Resources())
        self._next_framework = self._next_offer = 0

    # --- subscription ---------------------------------------------------------------------

    def subscribe(self, body: dict[str, Any], call_framework_id: str | None, stream_id: str, now: float) -> Effects:
        info = body.get("framework_info")
        if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("user", "name")):
            raise BadCall("Failed to convert JSON into Call protobuf: "
                          "'subscribe.framework_info' needs 'user' and 'name'")
        info_id = (info.get("id") or {}).get("value")
        if call_framework_id is not None and info_id != call_framework_id:
            raise BadCall("Failed to validate scheduler::Call: "
                          "'framework_id' differs from 'subscribe.framework_info.id'")
        if info_id and any(f.id == info_id for f in self.completed_frameworks):
            raise FrameworkRemoved("Framework has been removed")
        effects = Effects()
        framework = self.frameworks.get(info_id) if info_id else None
        if framework is None:
            framework_id = info_id or self._new_framework_id()
            framework = Framework(framework_id, info, None, registered=now)
            self.frameworks[framework_id] = framework
        if framework.stream_id is not None:
            effects.closes.append((framework.stream_id, "Framework failed over"))
        self._recover_offers(framework)
        framework.info = {**info, "id": {"value": framework.id}}
        framework.stream_id = stream_id
        framework.failover_deadline = framework.unregistered = None
        framework.suppressed = bool(body.get("suppressed_roles"))
        effects.events.append((framework.id, event("SUBSCRIBED", {
            "framework_id": {"value": framework.id},
            "heartbeat_interval_seconds": self.heartbeat_interval,
            "master_info": self.info,
        })))
        for task in framework.tasks.values():
            if task.pending:
                self._send_head(framework, task, now, effects)
        return effects

    def disconnected(self, framework_id: str, stream_id: str, now: float) -> Effects:
        """The framework's event stream went away: keep its tasks for ``failover_timeout``."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.stream_id != stream_id:
            return Effects()
        framework.stream_id = None
        framework.unregistered = now
        self._recover_offers(framework)
        framework.failover_deadline = now + float(framework.info.get("failover_timeout", 0.0))
        if framework.failover_deadline <= now:
            return self._remove_framework(framework, now)
        return Effects()

    def framework_for_call(self, framework_id: str, stream_id: str | None) -> Framework:
        """Mesos's checks on every call but SUBSCRIBE, with its statuses and messages."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            raise BadCall("Framework cannot be found")
        if not framework.connected:
            raise BadCall("Framework is not subscribed", 403)
        if stream_id is None:
            raise BadCall("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.stream_id:
            raise BadCall(f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
                          f"currently associated with framework ID {framework_id}")
        return framework

    # --- calls ----------------------------------------------------------------------------

    def accept(self, framework: Framework, body: dict[str, Any], now: float) -> Effects:
        offer_ids = ids(body.get("offer_ids"), "offer_ids")
        seconds = refuse_seconds(body.get("filters"))
        specs: list[TaskSpec] = []
        for operation in body.get("operations", []):
            kind = operation.get("type")
            if kind != "LAUNCH":
                raise BadCall(f"Offer operation {kind} is not supported by the wharf dev-cluster stand-in "
                              "(only LAUNCH is)", 400)
            specs.extend(parse_task(info) for info in (operation.get("launch") or {}).get("task_infos", []))
        effects = Effects()
        offers, error = self._take_offers(framework, offer_ids)
        if error is not None:
            state = "TASK_DROPPED" if framework.capable("PARTITION_AWARE") else "TASK_LOST"
            for spec in specs:
                self._master_update(framework, spec.task_id, spec.agent_id, state, "REASON_INVALID_OFFERS",
                                    f"Task launched with invalid offers: {error}", now, effects)
            return effects
        if not offers:
            return effects
        agent = self.agents[offers[0].agent_id]
        offered = sum((o.resources for o in offers), Resources())
        verdicts, unused = alloc.check_launch(specs, offered, agent.id, framework.tasks)
        for verdict in verdicts:
            spec = verdict.spec
            if verdict.error is not None:
                self._master_update(framework, spec.task_id, spec.agent_id, "TASK_ERROR", "REASON_TASK_INVALID",
                                    verdict.error, now, effects)
                continue
            task = Task(spec, framework.id, agent.id, str(uuid.uuid4()))
            framework.tasks[spec.task_id] = task
            self.used[agent.id] = self.used[agent.id] + spec.resources
            effects.launches.append(Launch(framework.id, spec, agent, task.container_id))
        self._refuse(framework, agent.id, unused, seconds, now)
        return effects

    def decline(self, framework: Framework, body: dict[str, Any], now: float) -> Effects:
        seconds = refuse_seconds(body.get("filters"))
        for offer_id in ids(body.get("offer_ids"), "offer_ids"):
            offer = self.offers.get(offer_id)
            if offer is not None and offer.framework_id == framework.id:
                del self.offers[offer_id]
                self._refuse(framework, offer.agent_id, offer.resources, seconds, now)
        return Effects()

    def revive(self, framework: Framework) -> Effects:
        framework.suppressed = False
        framework.filters.clear()
        return Effects()

    def suppress(self, framework: Framework) -> Effects:
        framework.suppressed = True
        return Effects()

    def kill(self, framework: Framework, body: dict[str, Any], now: float) -> Effects:
        task_id = ids([body.get("task_id")], "kill.task_id")[0]
        task = framework.tasks.get(task_id)
        if task is None or task.state in TERMINAL_STATES:
            return self.reconcile(framework, {"tasks": [body]}, now)  # Mesos answers with reconciliation
        grace = grace_seconds(body.get("kill_policy"))
        effects = Effects()
        effects.kills.append(Kill(framework.id, task_id, grace if grace is not None else task.spec.kill_grace))
        return effects

    def acknowledge(self, framework: Framework, body: dict[str, Any], now: float) -> Effects:
        task_id = ids([body.get("task_id")], "acknowledge.task_id")[0]
        effects = Effects()
        task = framework.tasks.get(task_id)
        if task is None or not task.pending or task.pending[0].get("uuid") != body.get("uuid"):
            return effects  # Mesos ignores acknowledgements of unknown or already acknowledged updates
        acked = task.pending.popleft()
        task.attempts = 0
        if task.pending:
            self._send_head(framework, task, now, effects)
        elif acked["state"] in TERMINAL_STATES:
            del framework.tasks[task_id]
            framework.completed.append(task)
        return effects

    def reconcile(self, framework: Framework, body: dict[str, Any], now: float) -> Effects:
        effects = Effects()
        asked = body.get("tasks") or []
        if not asked:  # implicit: the latest state of every task the master knows
            for known in framework.tasks.values():
                effects.events.append((framework.id, event("UPDATE", {"status": self._reconciled(known, now)})))
            return effects
        aware = framework.capable("PARTITION_AWARE")
        for item in asked:
            task_id = ids([item.get("task_id")], "reconcile.tasks.task_id")[0]
            agent_id = (item.get("agent_id") or {}).get("value")
            task = framework.tasks.get(task_id)
            if task is not None:
                status = self._reconciled(task, now)
            else:
                known_agent = agent_id in self.agents
                state = ("TASK_GONE" if known_agent else "TASK_UNKNOWN") if aware else "TASK_LOST"
                status = task_status(task_id, state, agent_id or "", source="SOURCE_MASTER", timestamp=now,
                                     reason="REASON_RECONCILIATION", message="Reconciliation: Task is unknown")
                if not agent_id:
                    del status["agent_id"]
            effects.events.append((framework.id, event("UPDATE", {"status": status})))
        return effects

    def teardown(self, framework: Framework, now: float) -> Effects:
        effects = Effects(closes=[(framework.stream_id, None)] if framework.stream_id else [])
        framework.stream_id = None
        removed = self._remove_framework(framework, now)
        removed.closes[:0] = effects.closes
        return removed

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
            self.used[task.agent_id] = self.used[task.agent_id] - task.spec.resources
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

    def _new_framework_id(self) -> str:
        framework_id = f"{self.id}-{self._next_framework:04d}"
        self._next_framework += 1
        return framework_id

    def _retry_delay(self, task: Task) -> float:
        return min(self.update_retry * (2 ** task.attempts), MAX_RETRY)

    def _take_offers(self, framework: Framework, offer_ids: tuple[str, ...]) -> tuple[list[Offer], str | None]:
        """Remove the offers an ACCEPT names; the error is why they cannot be used together."""
        taken: list[Offer] = []
        error = None if offer_ids else "No offers specified"
        for offer_id in offer_ids:
            offer = self.offers.get(offer_id)
            if offer is None or offer.framework_id != framework.id:
                error = error or f"Offer {offer_id} is no longer valid"
                continue
            del self.offers[offer_id]
            taken.append(offer)
        if error is None and len({o.agent_id for o in taken}) > 1:
            error = "Aggregated offers must belong to one single agent"
        return taken, error

    def _refuse(self, framework: Framework, agent_id: str, resources: Resources, seconds: float, now: float) -> None:
        if seconds > 0 and not resources.is_empty():
            framework.filters[agent_id] = Filter(resources, now + seconds)

    def _recover_offers(self, framework: Framework) -> None:
        for offer_id in [o.id for o in self.offers.values() if o.framework_id == framework.id]:
            del self.offers[offer_id]

    def _send_head(self, framework: Framework, task: Task, now: float, effects: Effects, retry: bool = False) -> None:
        task.sent_at = now
        if not retry:
            task.attempts = 0
        if framework.connected:
            effects.events.append((framework.id, event("UPDATE", {"status": task.pending[0]})))

    def _master_update(self, framework: Framework, task_id: str, agent_id: str, state: str, reason: str,
                       message: str, now: float, effects: Effects) -> None:
        """An update the master makes up itself (no uuid, never retried), as for invalid tasks."""
        status = task_status(task_id, state, agent_id, source="SOURCE_MASTER", timestamp=now,
                             reason=reason, message=message)
        effects.events.append((framework.id, event("UPDATE", {"status": status})))

    def _reconciled(self, task: Task, now: float) -> dict[str, Any]:
        status = dict(task.latest or task_status(task.spec.task_id, task.state, task.agent_id,
                                                 source="SOURCE_MASTER", timestamp=now))
        status.update(source="SOURCE_MASTER", reason="REASON_RECONCILIATION", timestamp=now)
        return status

    def _remove_framework(self, framework: Framework, now: float) -> Effects:
        """Kill the framework's tasks, free what they held and forget it (TEARDOWN, failover expiry)."""
        effects = Effects()
        self._recover_offers(framework)
        for task in framework.tasks.values():
            if task.state not in TERMINAL_STATES:
                effects.kills.append(Kill(framework.id, task.spec.task_id, task.spec.kill_grace))
                self.used[task.agent_id] = self.used[task.agent_id] - task.spec.resources
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

