"""The scheduler's decisions (pure): submissions, offers, status updates, kills, reconciliation, time.

`Core` holds the tasks and what it knows of the subscription; each method takes `now` and returns
`SchedulerEffects`: the records to persist, then the calls to make. The caller persists `writes` first and
only then makes the calls, so an ACCEPT is never sent for a launch that is not stored, and an
update is acknowledged only once what it changed is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any

from framework.offers import Match, OfferView, Placement, match, task_info
from framework.tasks import (
    ACTIVE,
    FAILED,
    FINISHED,
    KILLED,
    LOST,
    QUEUED,
    RUNNING,
    STAGING,
    TaskRecord,
    TaskSpec,
    queued_record,
    split_mesos_id,
)
from wharf.retry import Retry

RETRY_BACKOFF = Retry(delay=2.0, backoff=2.0, max_delay=60.0, jitter=0.0)
REFUSE_WAITING = 1.0  # decline filter while tasks wait (short: they may fit the next offer)
REFUSE_IDLE = 60.0  # decline filter with nothing queued (a REVIVE clears it when work arrives)
RECONCILE_RETRY = 5.0  # re-ask the master about tasks it has not answered for, doubling
KILL_RETRY = 10.0  # Mesos kills are not reliable: ask again while the task lives
NEVER_LAUNCHED = {"REASON_RECONCILIATION", "REASON_INVALID_OFFERS"}  # master-made, for tasks it never had
LOST_STATES = {"TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNKNOWN",
               "TASK_UNREACHABLE"}


@dataclass
class SchedulerEffects:
    """What a decision asks for, in the order it must happen: persist, then call."""

    writes: dict[str, TaskRecord] = field(default_factory=dict)
    launches: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (offer id, TaskInfos)
    declines: list[str] = field(default_factory=list)
    refuse_seconds: float = REFUSE_WAITING
    acks: list[Mapping[str, Any]] = field(default_factory=list)
    kills: list[tuple[str, str | None]] = field(default_factory=list)  # (Mesos task id, agent id)
    reconcile: list[tuple[str, str | None]] = field(default_factory=list)
    revive: bool = False
    suppress: bool = False
    to_running: list[float] = field(default_factory=list)  # seconds from submit to RUNNING, per task
    offers_used: int = 0

    def merge(self, other: SchedulerEffects) -> SchedulerEffects:
        self.writes.update(other.writes)
        self.launches += other.launches
        self.declines += other.declines
        if other.declines:
            self.refuse_seconds = max(self.refuse_seconds, other.refuse_seconds)
        self.acks += other.acks
        self.kills += other.kills
        self.reconcile += other.reconcile
        if other.revive:
            self.revive, self.suppress = True, False
        if other.suppress:
            self.revive, self.suppress = False, True
        self.to_running += other.to_running
        self.offers_used += other.offers_used
        return self


def backoff(failures: int) -> float:
    """Seconds to wait before retrying after the `failures`-th failed attempt."""
    return next(islice(RETRY_BACKOFF.delays(), max(0, failures - 1), None))


class Core:
    """All tasks of the framework and the state of its subscription."""

    def __init__(self, records: Iterable[TaskRecord] = ()) -> None:
        self.tasks: dict[str, TaskRecord] = {r.id: r for r in sorted(records, key=lambda r: (r.submitted, r.id))}
        self.subscribed = False
        self.suppressed = False
        self.reconciling: dict[str, str | None] = {}  # Mesos task id -> agent id, not yet answered
        self._reconcile_at = 0.0
        self._reconcile_wait = RECONCILE_RETRY
        self._killed_at: dict[str, float] = {}

    # --- views ---------------------------------------------------------------------------

    @property
    def reconciled(self) -> bool:
        return self.subscribed and not self.reconciling

    def queued(self, now: float) -> list[TaskRecord]:
        return [r for r in self.tasks.values() if r.state == QUEUED and r.not_before <= now]

    def wanted(self) -> bool:
        """Whether offers are wanted: something waits to launch, or reconciliation is not done."""
        return not self.reconciled or any(r.state == QUEUED for r in self.tasks.values())

    def placements(self) -> dict[str, list[Placement]]:
        out: dict[str, list[Placement]] = {}
        for r in self.tasks.values():
            if r.state in ACTIVE and r.hostname is not None:
                out.setdefault(r.spec.group, []).append((r.hostname, dict(r.attributes)))
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.tasks.values():
            out[r.state] = out.get(r.state, 0) + 1
        return out

    # --- decisions -----------------------------------------------------------------------

    def submit(self, specs: Sequence[TaskSpec], now: float) -> SchedulerEffects:
        """Queue new tasks; REVIVE so that filters from earlier declines do not hold them back."""
        effects = SchedulerEffects()
        for spec in specs:
            if spec.id in self.tasks:
                raise ValueError(f"task {spec.id} exists")
            self.tasks[spec.id] = effects.writes[spec.id] = queued_record(spec, now)
        if specs and self.subscribed:
            effects.revive, self.suppressed = True, False
        return effects

    def subscribed_now(self, now: float) -> SchedulerEffects:
        """SUBSCRIBED (first time or after a failover): ask the master about every launched task."""
        self.subscribed, self.suppressed = True, False
        self.reconciling = {r.mesos_id: r.agent_id for r in self.tasks.values() if r.state in ACTIVE}
        self._reconcile_at, self._reconcile_wait = now, RECONCILE_RETRY
        self._killed_at.clear()
        return SchedulerEffects(reconcile=list(self.reconciling.items()))

    def disconnected(self) -> None:
        self.subscribed = False

    def offers(self, offers: Sequence[Mapping[str, Any]], now: float) -> SchedulerEffects:
        """Launch queued tasks on the offers they fit (first fit, constraints); decline the rest."""
        views = [OfferView.from_offer(o) for o in offers]
        effects = SchedulerEffects()
        if not self.reconciled:  # nothing new is launched before the master has told us what runs
            effects.declines = [v.id for v in views]
            return effects
        queued = self.queued(now)
        matches: list[Match] = match(views, queued, self.placements()) if queued else [
            Match(v, ()) for v in views]
        for m in matches:
            if not m.tasks:
                effects.declines.append(m.offer.id)
                continue
            infos = []
            for record, ports in m.tasks:
                launched = record.moved(
                    STAGING, now, f"launching on {m.offer.hostname}", launches=record.launches + 1,
                    agent_id=m.offer.agent_id, hostname=m.offer.hostname, host_ports=ports, seen=False,
                    attributes=tuple(sorted(m.offer.attributes.items())))
                self.tasks[record.id] = effects.writes[record.id] = launched
                infos.append(task_info(launched, m.offer, ports))
            effects.launches.append((m.offer.id, infos))
            effects.offers_used += 1
        waiting = any(r.state == QUEUED for r in self.tasks.values())
        effects.refuse_seconds = REFUSE_WAITING if waiting else REFUSE_IDLE
        return effects.merge(self._want())

    def update(self, status: Mapping[str, Any], now: float) -> SchedulerEffects:
        """A TaskStatus: move the task's state, retry or finish it; acknowledge it once stored."""
        effects = SchedulerEffects(acks=[status] if status.get("uuid") else [])
        mesos_id = str(status["task_id"]["value"])
        self.reconciling.pop(mesos_id, None)
        parsed = split_mesos_id(mesos_id)
        record = self.tasks.get(parsed[0]) if parsed else None
        if record is None or parsed is None or parsed[1] != record.launches or record.terminal:
            return effects.merge(self._want())  # an earlier attempt, or not ours: nothing to change
        changed = self._apply(record, str(status["state"]), str(status.get("reason") or ""),
                              str(status.get("source") or ""), str(status.get("message") or ""), now)
        if changed != record:
            self.tasks[record.id] = effects.writes[record.id] = changed
            if changed.running_at is not None and record.running_at is None:
                effects.to_running.append(changed.running_at - changed.submitted)
            if changed.state == QUEUED and self.subscribed:
                effects.revive, self.suppressed = True, False
        return effects.merge(self._want())

    def kill(self, task_id: str, now: float) -> SchedulerEffects:
        """Kill a task: a queued one ends at once, a launched one when Mesos says it is dead."""
        record = self.tasks[task_id]
        effects = SchedulerEffects()
        if record.terminal:
            return effects
        if record.state == QUEUED:
            changed = record.moved(KILLED, now, "killed before launch", kill_requested=True)
        else:
            changed = replace(record, kill_requested=True)
            if self.subscribed:
                effects.kills.append((record.mesos_id, record.agent_id))
                self._killed_at[record.mesos_id] = now
        self.tasks[task_id] = effects.writes[task_id] = changed
        return effects.merge(self._want())

    def recheck(self, mesos_ids: Iterable[str], now: float) -> None:
        """Launches whose ACCEPT failed: ask the master about them before launching anything else."""
        for mesos_id in mesos_ids:
            parsed = split_mesos_id(mesos_id)
            record = self.tasks.get(parsed[0]) if parsed else None
            if record is not None and record.mesos_id == mesos_id and record.state in ACTIVE:
                self.reconciling[mesos_id] = record.agent_id
        self._reconcile_at, self._reconcile_wait = now - RECONCILE_RETRY, RECONCILE_RETRY

    def forget_finished(self, now: float, retention: float) -> int:
        """Drop the finished tasks whose retention has passed (the store purges their znodes); how many."""
        gone = [r.id for r in self.tasks.values() if r.terminal and (r.ended_at or 0.0) + retention <= now]
        for task_id in gone:
            del self.tasks[task_id]
        return len(gone)

    def remember(self, records: Iterable[TaskRecord], now: float, retention: float) -> None:
        """Add finished tasks read back from the store: those unknown here and still within retention,
        ahead of the others (they ended before this leader took over)."""
        kept = sorted((r for r in records if r.terminal and r.id not in self.tasks
                       and (r.ended_at or 0.0) + retention > now), key=lambda r: (r.submitted, r.id))
        if kept:
            self.tasks = {**{r.id: r for r in kept}, **self.tasks}

    def tick(self, now: float) -> SchedulerEffects:
        """What time brings: reconciliation asked again, kills repeated, offers wanted or not."""
        effects = SchedulerEffects()
        if self.subscribed and self.reconciling and now >= self._reconcile_at + self._reconcile_wait:
            effects.reconcile = list(self.reconciling.items())
            self._reconcile_at, self._reconcile_wait = now, min(self._reconcile_wait * 2, 60.0)
        if self.reconciled:
            for r in self.tasks.values():
                if r.kill_requested and r.state in ACTIVE and now >= self._killed_at.get(r.mesos_id, 0) + KILL_RETRY:
                    effects.kills.append((r.mesos_id, r.agent_id))
                    self._killed_at[r.mesos_id] = now
        if self.subscribed:
            effects.merge(self._want())
        return effects

    # --- helpers -------------------------------------------------------------------------

    def _want(self) -> SchedulerEffects:
        wanted = self.wanted()
        if not self.subscribed or wanted != self.suppressed:
            return SchedulerEffects()
        self.suppressed = not wanted
        return SchedulerEffects(revive=wanted, suppress=not wanted)

    def _apply(self, record: TaskRecord, state: str, reason: str, source: str, message: str,
               now: float) -> TaskRecord:
        if state in ("TASK_STAGING", "TASK_STARTING"):
            return record if record.seen else replace(record, seen=True)
        if state in ("TASK_RUNNING", "TASK_KILLING"):
            if record.state == RUNNING:
                return record if record.seen else replace(record, seen=True)
            return record.moved(RUNNING, now, message or "running", seen=True,
                                running_at=record.running_at if record.running_at is not None else now)
        if state == "TASK_FINISHED":
            return record.moved(FINISHED, now, message or "finished", seen=True)
        if record.kill_requested:
            return record.moved(KILLED, now, message or "killed", seen=True)
        if state in LOST_STATES and not record.seen and source == "SOURCE_MASTER" and reason in NEVER_LAUNCHED:
            # the launch never reached the master (the scheduler stopped between storing and sending it)
            return record.moved(QUEUED, now, f"not launched ({reason}); queued again", agent_id=None,
                                hostname=None, host_ports=(), attributes=())
        final = LOST if state in LOST_STATES else FAILED if state in ("TASK_FAILED", "TASK_ERROR") else KILLED
        failures = record.failures + 1
        text = message or state
        if failures > record.spec.retries:
            return record.moved(final, now, text, failures=failures, seen=True)
        wait = backoff(failures)
        return record.moved(QUEUED, now, f"{text}; retry {failures} of {record.spec.retries} in {wait:g}s",
                            failures=failures, not_before=now + wait, agent_id=None, hostname=None,
                            host_ports=(), attributes=())


__all__ = ["Core", "FINISHED", "SchedulerEffects", "backoff"]
