"""Offers in, launches out (pure): resources of an offer, first-fit matching with constraints, TaskInfos.

`match(offers, queued, placed)` gives, for each offer, the tasks it takes (in queue order, each
the first offer it fits); offers that take nothing are to be declined.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from framework.constraints import field_value, satisfied
from framework.tasks import TaskRecord, TaskSpec

Range = tuple[int, int]
TASK_LABEL = "wharf.framework.task"  # the wharf task id, on the TaskInfo and so on its container
MESOS_ID_LABEL = "wharf.framework.mesos_task"
GROUP_LABEL = "wharf.framework.group"


@dataclass(frozen=True)
class OfferView:
    """What matching needs from one v1 Offer."""

    id: str
    agent_id: str
    hostname: str
    attributes: Mapping[str, str]
    cpus: float
    mem: float
    disk: float
    ports: tuple[Range, ...]

    @classmethod
    def from_offer(cls, offer: Mapping[str, Any]) -> OfferView:
        scalars: dict[str, float] = {}
        ports: list[Range] = []
        for res in offer.get("resources", []):
            if res.get("reservations") or res.get("reservation"):
                continue  # only unreserved resources are ours to use
            name = res.get("name")
            if res.get("type", "SCALAR") == "SCALAR":
                scalars[name] = scalars.get(name, 0.0) + float((res.get("scalar") or {}).get("value", 0))
            elif res.get("type") == "RANGES" and name == "ports":
                ports += [(int(r["begin"]), int(r["end"])) for r in (res.get("ranges") or {}).get("range", [])]
        return cls(id=str(offer["id"]["value"]), agent_id=str(offer["agent_id"]["value"]),
                   hostname=str(offer.get("hostname", "")), attributes=offer_attributes(offer),
                   cpus=scalars.get("cpus", 0.0), mem=scalars.get("mem", 0.0), disk=scalars.get("disk", 0.0),
                   ports=tuple(sorted(ports)))


def offer_attributes(offer: Mapping[str, Any]) -> dict[str, str]:
    """TEXT and SCALAR attributes as strings (RANGES and SET attributes are not matched on)."""
    out: dict[str, str] = {}
    for attr in offer.get("attributes", []):
        kind = attr.get("type")
        if kind == "TEXT":
            out[str(attr["name"])] = str((attr.get("text") or {}).get("value", ""))
        elif kind == "SCALAR":
            out[str(attr["name"])] = f"{float((attr.get('scalar') or {}).get('value', 0)):g}"
    return out


@dataclass
class _Room:
    """What is left of one offer while matching."""

    offer: OfferView
    cpus: float
    mem: float
    disk: float
    ports: list[Range]
    taken: list[tuple[TaskRecord, tuple[int, ...]]] = field(default_factory=list)

    def fits(self, spec: TaskSpec) -> bool:
        return (spec.cpus <= self.cpus + 1e-9 and spec.mem <= self.mem + 1e-9 and spec.disk <= self.disk + 1e-9
                and sum(e - b + 1 for b, e in self.ports) >= len(spec.ports))

    def take(self, record: TaskRecord) -> None:
        spec = record.spec
        self.cpus, self.mem, self.disk = self.cpus - spec.cpus, self.mem - spec.mem, self.disk - spec.disk
        chosen: list[int] = []
        while len(chosen) < len(spec.ports):
            begin, end = self.ports[0]
            chosen.append(begin)
            self.ports[0:1] = [(begin + 1, end)] if begin < end else []
        self.taken.append((record, tuple(chosen)))


Placement = tuple[str, Mapping[str, str]]  # (hostname, attributes) of a task that holds a place


@dataclass(frozen=True)
class Match:
    offer: OfferView
    tasks: tuple[tuple[TaskRecord, tuple[int, ...]], ...]  # (task, host ports given to it)


def match(offers: Sequence[OfferView], queued: Sequence[TaskRecord],
          placed: Mapping[str, Sequence[Placement]]) -> list[Match]:
    """First fit: each queued task (in order) goes to the first offer with room that its constraints allow.

    `placed` holds, per group, where that group's launched tasks are; the tasks placed here count too.
    """
    rooms = [_Room(o, o.cpus, o.mem, o.disk, list(o.ports)) for o in offers]
    groups: dict[str, list[Placement]] = {g: list(p) for g, p in placed.items()}
    for record in queued:
        spec = record.spec
        for room in rooms:
            if not room.fits(spec):
                continue
            if spec.constraints:
                where = groups.get(spec.group, [])
                host, attrs = room.offer.hostname, room.offer.attributes
                if not all(satisfied(c, host, attrs, (field_value(c.field, h, a) for h, a in where))
                           for c in spec.constraints):
                    continue
            room.take(record)
            groups.setdefault(spec.group, []).append((room.offer.hostname, room.offer.attributes))
            break
    return [Match(r.offer, tuple(r.taken)) for r in rooms]


def _scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": round(value, 3)}}


def _ranges(ports: Iterable[int]) -> list[Range]:
    out: list[Range] = []
    for port in sorted(ports):
        if out and port == out[-1][1] + 1:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return out


def task_info(record: TaskRecord, offer: OfferView, host_ports: tuple[int, ...]) -> dict[str, Any]:
    """The v1 TaskInfo launching `record`'s current attempt on `offer`: a Docker container."""
    spec = record.spec
    resources = [_scalar("cpus", spec.cpus), _scalar("mem", spec.mem)]
    if spec.disk:
        resources.append(_scalar("disk", spec.disk))
    if host_ports:
        resources.append({"name": "ports", "type": "RANGES",
                          "ranges": {"range": [{"begin": b, "end": e} for b, e in _ranges(host_ports)]}})
    variables = dict(spec.env)
    variables.update({"WHARF_TASK_ID": spec.id, "HOST": offer.hostname})
    for n, port in enumerate(host_ports):
        variables[f"PORT{n}"] = str(port)
    if host_ports:
        variables["PORTS"] = ",".join(str(p) for p in host_ports)
    command: dict[str, Any] = {"environment": {"variables": [{"name": k, "value": v}
                                                             for k, v in sorted(variables.items())]}}
    if spec.cmd:
        command.update(shell=True, value=spec.cmd)
    else:
        command["shell"] = False  # the image's own entrypoint and command
    docker: dict[str, Any] = {"image": spec.image, "network": spec.network, "force_pull_image": False}
    if spec.network == "BRIDGE" and host_ports:
        docker["port_mappings"] = [{"host_port": h, "container_port": c, "protocol": "tcp"}
                                   for h, c in zip(host_ports, spec.ports, strict=True)]
    if spec.parameters:
        docker["parameters"] = [{"key": k, "value": v} for k, v in spec.parameters]
    labels = [{"key": k, "value": v} for k, v in spec.labels]
    labels += [{"key": TASK_LABEL, "value": spec.id}, {"key": MESOS_ID_LABEL, "value": record.mesos_id},
               {"key": GROUP_LABEL, "value": spec.group}]
    return {
        "name": f"wharf:{spec.id}",
        "task_id": {"value": record.mesos_id},
        "agent_id": {"value": offer.agent_id},
        "resources": resources,
        "command": command,
        "container": {"type": "DOCKER", "docker": docker},
        "labels": {"labels": labels},
    }


def fits_some_agent(spec: TaskSpec | Any, agents: Iterable[Mapping[str, float]]) -> bool:
    """Whether any agent (its total cpus, mem, disk and port count) could ever hold the task."""
    return any(spec.cpus <= a.get("cpus", 0) and spec.mem <= a.get("mem", 0) and spec.disk <= a.get("disk", 0)
               and len(spec.ports) <= a.get("ports", 0) for a in agents)
