"""Offers -> TaskInfos for the Chronos stand-in, pure: what to launch on each offer, and how.

`plan_launches(state, offers)` picks, per offer, the queued runs that fit its cpus/mem/disk and
constraints, and builds their TaskInfos (a Docker container for a job with `container.image`, else
a command run by the agent's command executor with Chronos's `shell` semantics).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from devcluster.chronos import jobs as J
from devcluster.chronos.state import ChronosState, Run

TASK_NAME = "ChronosTask:{}"


def offer_scalars(offer: Mapping[str, Any]) -> dict[str, float]:
    """The unreserved and reserved scalar resources of a v1 Offer, summed by name."""
    totals: dict[str, float] = {}
    for resource in offer.get("resources", []):
        if resource.get("type", "SCALAR") == "SCALAR":
            name = str(resource["name"])
            totals[name] = totals.get(name, 0.0) + float(resource["scalar"]["value"])
    return totals


def offer_attributes(offer: Mapping[str, Any]) -> dict[str, str]:
    """TEXT and SCALAR attributes as text, plus `hostname`, for constraints."""
    attributes = {"hostname": str(offer.get("hostname", ""))}
    for attribute in offer.get("attributes", []):
        if attribute.get("type") == "TEXT":
            attributes[str(attribute["name"])] = str(attribute["text"]["value"])
        elif attribute.get("type") == "SCALAR":
            attributes[str(attribute["name"])] = f"{attribute['scalar']['value']:g}"
    return attributes


def constraints_met(job: J.Job, attributes: Mapping[str, str]) -> bool:
    """Chronos's EQUALS, LIKE (full regex match) and UNLIKE against the offer's attributes."""
    for constraint in job.constraints:
        value = attributes.get(constraint.attribute)
        if constraint.operator == "EQUALS" and value != constraint.value:
            return False
        if constraint.operator == "LIKE" and (value is None or not re.fullmatch(constraint.value, value)):
            return False
        if constraint.operator == "UNLIKE" and value is not None and re.fullmatch(constraint.value, value):
            return False
    return True


def _scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def task_info(job: J.Job, run: Run, offer: Mapping[str, Any]) -> dict[str, Any]:
    """The v1 TaskInfo Chronos would send for `run` of `job` on `offer`."""
    variables = [{"name": "mesos_task_id", "value": run.task_id},
                 {"name": "CHRONOS_JOB_OWNER", "value": job.owner},
                 {"name": "CHRONOS_JOB_NAME", "value": job.name},
                 {"name": "HOST", "value": str(offer.get("hostname", ""))},
                 {"name": "CHRONOS_RESOURCE_CPU", "value": f"{job.cpus:g}"},
                 {"name": "CHRONOS_RESOURCE_MEM", "value": f"{job.mem:g}"},
                 {"name": "CHRONOS_RESOURCE_DISK", "value": f"{job.disk:g}"}]
    variables += [{"name": item.name, "value": item.value} for item in job.environment_variables]
    command: dict[str, Any] = {"shell": job.shell, "environment": {"variables": variables}}
    if job.command:
        command["value"] = job.command
    if job.arguments:
        command["arguments"] = list(job.arguments)
    uris = [{"uri": item.uri, "executable": item.executable, "cache": item.cache, "extract": item.extract,
             **({"output_file": item.output_file} if item.output_file else {})} for item in job.fetch]
    uris += [{"uri": uri} for uri in job.uris]
    if uris:
        command["uris"] = uris  # passed on: a master that cannot fetch answers TASK_ERROR, which retries
    info: dict[str, Any] = {
        "name": TASK_NAME.format(job.name),
        "task_id": {"value": run.task_id},
        "agent_id": dict(offer["agent_id"]),
        "resources": [_scalar("cpus", job.cpus), _scalar("mem", job.mem), _scalar("disk", job.disk)],
        "command": command,
    }
    if job.container is not None:
        info["container"] = _container_info(job.container)
    return info


def _container_info(container: J.Container) -> dict[str, Any]:
    volumes = []
    for volume in container.volumes:
        item: dict[str, Any] = {"container_path": volume.container_path, "mode": volume.mode or "RW"}
        if volume.host_path is not None:
            item["host_path"] = volume.host_path
        if volume.external is not None:
            item["source"] = {"type": "DOCKER_VOLUME", "docker_volume": {
                "driver": volume.external.provider, "name": volume.external.name}}
        volumes.append(item)
    info: dict[str, Any] = {"type": container.type, "volumes": volumes}
    if container.type == "DOCKER":
        info["docker"] = {"image": container.image, "network": container.network,
                          "force_pull_image": container.force_pull_image,
                          "parameters": [{"key": p.key, "value": p.value} for p in container.parameters]}
    else:
        info["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": container.image}}}
    return info


Plan = list[tuple[str, list[tuple[Run, dict[str, Any]]]]]  # (offer id, [(run, TaskInfo)])


def plan_launches(state: ChronosState, offers: Iterable[Mapping[str, Any]]) -> Plan:
    """For each offer (in order), the queued runs it takes and their TaskInfos, first come first served."""
    plan: Plan = []
    taken: set[str] = set()
    for offer in offers:
        free = offer_scalars(offer)
        attributes = offer_attributes(offer)
        chosen: list[tuple[Run, dict[str, Any]]] = []
        for run in state.queue:
            job = state.jobs.get(run.job)
            if run.task_id in taken or job is None or not constraints_met(job, attributes):
                continue
            need = {"cpus": job.cpus, "mem": job.mem, "disk": job.disk}
            if all(free.get(name, 0.0) + 1e-9 >= amount for name, amount in need.items()):
                for name, amount in need.items():
                    free[name] = free.get(name, 0.0) - amount
                chosen.append((run, task_info(job, run, offer)))
                taken.add(run.task_id)
        plan.append((str(offer["id"]["value"]), chosen))
    return plan
