"""The Mesos master's state machine: frameworks, offers, filters, tasks and status updates.

:class:`Master` handles the scheduler API's calls (SUBSCRIBE, ACCEPT, DECLINE, KILL, ...) on the
books of :class:`~devcluster.mesos.ledger.Ledger` (agents, frameworks, tasks, offers; agent reports
and time). It does no I/O, starts no threads and reads no clock: every method takes ``now``
(seconds since the epoch, as TaskStatus.timestamp carries) and returns :class:`Effects` —
events for frameworks' streams, tasks for the agents to launch or kill, streams to close.
The HTTP layer applies them under one lock.
"""

from __future__ import annotations

import uuid
from typing import Any

from devcluster.mesos import offers as alloc
from devcluster.mesos.ledger import Ledger
from devcluster.mesos.model import (
    Effects,
    Framework,
    FrameworkRemoved,
    Kill,
    Launch,
    Offer,
    Task,
)
from devcluster.mesos.offers import Filter
from devcluster.mesos.protocol import (
    TERMINAL_STATES,
    BadCall,
    MesosTaskSpec,
    event,
    grace_seconds,
    ids,
    parse_task,
    refuse_seconds,
    task_status,
)
from devcluster.mesos.resources import Resources


class Master(Ledger):
    """The whole master: agents are fixed at construction; everything else changes by calls."""

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
        specs: list[MesosTaskSpec] = []
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

    # --- helpers --------------------------------------------------------------------------

    def _new_framework_id(self) -> str:
        framework_id = f"{self.id}-{self._next_framework:04d}"
        self._next_framework += 1
        return framework_id

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
