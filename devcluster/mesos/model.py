"""The master's records: frameworks, tasks, offers, and the effects its decisions have.

Parsed inputs and decisions are frozen; ``Task`` and ``Framework`` are the master's own
mutable bookkeeping, changed only by :class:`devcluster.mesos.master.Master`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from devcluster.mesos.offers import AgentInfo, Filter
from devcluster.mesos.protocol import MesosTaskSpec
from devcluster.mesos.resources import Resources

VERSION = "1.11.0"
MAX_RETRY = 600.0  # Mesos's status update retries back off up to 10 minutes
MAX_COMPLETED_FRAMEWORKS, MAX_COMPLETED_TASKS = 50, 1000  # Mesos's defaults


class FrameworkRemoved(Exception):
    """A SUBSCRIBE for a framework that was torn down or failed over for too long."""


@dataclass(frozen=True)
class Launch:
    framework_id: str
    task: MesosTaskSpec
    agent: AgentInfo
    container_id: str


@dataclass(frozen=True)
class Kill:
    framework_id: str
    task_id: str
    grace: float | None


@dataclass(frozen=True)
class StatusReport:
    """What an agent says about a task; the master turns it into an acknowledged update."""

    framework_id: str
    task_id: str
    state: str
    message: str | None = None
    reason: str | None = None
    source: str = "SOURCE_EXECUTOR"
    container_status: dict[str, Any] | None = None


@dataclass
class Effects:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (framework id, event)
    launches: list[Launch] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    closes: list[tuple[str, str | None]] = field(default_factory=list)  # (stream id, ERROR message)


@dataclass(frozen=True)
class Offer:
    id: str
    framework_id: str
    agent_id: str
    resources: Resources
    created: float


@dataclass
class Task:
    spec: MesosTaskSpec
    framework_id: str
    agent_id: str
    container_id: str
    state: str = "TASK_STAGING"
    latest: dict[str, Any] | None = None  # the last status, without uuid
    history: list[dict[str, Any]] = field(default_factory=list)
    pending: deque[dict[str, Any]] = field(default_factory=deque)  # updates awaiting acknowledgement
    sent_at: float = 0.0
    attempts: int = 0


@dataclass
class Framework:
    id: str
    info: dict[str, Any]
    stream_id: str | None
    registered: float
    suppressed: bool = False
    failover_deadline: float | None = None
    unregistered: float | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    completed: deque[Task] = field(default_factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS))
    filters: dict[str, Filter] = field(default_factory=dict)
    last_offered: float = 0.0

    @property
    def connected(self) -> bool:
        return self.stream_id is not None

    @property
    def role(self) -> str:
        roles = self.info.get("roles") or [self.info.get("role", "*")]
        return str(roles[0])

    def capable(self, capability: str) -> bool:
        return any(c.get("type") == capability for c in self.info.get("capabilities", []))


def merge(into: Effects, other: Effects) -> None:
    into.events += other.events
    into.launches += other.launches
    into.kills += other.kills
    into.closes += other.closes
