"""Pure decisions of the stand-in's allocator: agents, free resources, filters, offers, launches.

Nothing here keeps state or reads the clock; callers pass ``now`` and get values back.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devcluster.mesos.protocol import MesosTaskSpec
from devcluster.mesos.resources import Resources

AGENT_PORT = 5051  # what a real agent listens on; the stand-in's agents serve no HTTP
# Mesos's allocator only offers an agent when at least this much is free (MIN_CPUS, MIN_MEM).
MIN_CPUS, MIN_MEM = 0.01, 32.0


@dataclass(frozen=True)
class AgentInfo:
    """One simulated agent: a loopback address of its own, TEXT attributes and total resources."""

    id: str
    hostname: str
    attributes: tuple[tuple[str, str], ...]
    total: Resources

    @property
    def pid(self) -> str:
        return f"slave(1)@{self.hostname}:{AGENT_PORT}"


def make_agents(master_id: str, port_ranges: Sequence[tuple[int, int]], cpus: float = 4, mem: float = 4096,
                disk: float = 10240) -> tuple[AgentInfo, ...]:
    """One agent per port range, on 127.0.0.2, 127.0.0.3, ...; the caller picks the ranges."""
    agents = []
    for i, ports in enumerate(port_ranges):
        host = str(ipaddress.IPv4Address(0x7F000002 + i))
        attributes = (("rack", f"rack-{i % 2 + 1}"), ("zone", f"zone-{'abc'[i % 3]}"))
        agents.append(AgentInfo(f"{master_id}-S{i}", host, attributes, Resources.of(cpus, mem, disk, [ports])))
    return tuple(agents)


def agent_attributes(agent: AgentInfo) -> list[dict[str, Any]]:
    return [{"name": k, "type": "TEXT", "text": {"value": v}} for k, v in agent.attributes]


def worth_offering(free: Resources) -> bool:
    return free.scalar("cpus") >= MIN_CPUS or free.scalar("mem") >= MIN_MEM


@dataclass(frozen=True)
class Filter:
    """A framework refused ``resources`` on one agent until ``until`` (monotonic seconds)."""

    resources: Resources
    until: float


def filters_out(flt: Filter | None, free: Resources, now: float) -> bool:
    """Mesos's rule: an unexpired filter holds back an offer only if it refused at least as much."""
    return flt is not None and now < flt.until and flt.resources.contains(free)


def dominant_share(allocated: Resources, total: Resources) -> float:
    """The DRF share: the largest fraction of any scalar the framework holds."""
    shares = [allocated.scalar(name) / value for name, value in total.scalars.items() if value > 0]
    return max(shares, default=0.0)


def pick_framework(candidates: Sequence[str], allocated: Mapping[str, Resources], total: Resources,
                   last_offered: Mapping[str, float]) -> str | None:
    """The candidate with the lowest dominant share; ties go to the one offered least recently."""
    if not candidates:
        return None
    return min(candidates, key=lambda fid: (dominant_share(allocated.get(fid, Resources()), total),
                                            last_offered.get(fid, 0.0), fid))


def offer_json(offer_id: str, framework_id: str, agent: AgentInfo, resources: Resources,
               role: str) -> dict[str, Any]:
    """A v1 ``Offer``."""
    return {
        "id": {"value": offer_id},
        "framework_id": {"value": framework_id},
        "agent_id": {"value": agent.id},
        "hostname": agent.hostname,
        "url": {"scheme": "http", "address": {"hostname": agent.hostname, "ip": agent.hostname, "port": AGENT_PORT},
                "path": "/slave(1)"},
        "resources": resources.to_proto(role),
        "attributes": agent_attributes(agent),
        "allocation_info": {"role": role},
    }


@dataclass(frozen=True)
class LaunchCheck:
    """The verdict on one task of an ACCEPT: ``error`` is None when it may run."""

    spec: MesosTaskSpec
    error: str | None


def check_launch(specs: Iterable[MesosTaskSpec], offered: Resources, agent_id: str,
                 known_task_ids: Iterable[str]) -> tuple[list[LaunchCheck], Resources]:
    """Match LAUNCH tasks against the offered resources, in order, as Mesos's task validation does.

    Returns a verdict per task and the resources left unused.
    """
    seen = set(known_task_ids)
    available = offered
    verdicts = []
    for spec in specs:
        error = None
        if spec.task_id in seen:
            error = f"Task has duplicate ID: {spec.task_id}"
        elif spec.agent_id != agent_id:
            error = f"Task uses invalid agent: {spec.agent_id}"
        elif spec.problem:
            error = spec.problem
        elif spec.has_executor:
            error = "Custom executors (TaskInfo.executor) are not supported by this stand-in"
        elif spec.command is None:
            error = "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
        elif not available.contains(spec.resources):
            error = f"Task uses more resources {spec.resources} than available {available}"
        seen.add(spec.task_id)
        if error is None:
            available = available - spec.resources
        verdicts.append(LaunchCheck(spec, error))
    return verdicts, available
