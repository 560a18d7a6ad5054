"""Chronos jobs: read a job body, render it as `/v1/scheduler/jobs` does, and reason about the graph.

The job model is `devcluster.chronos.model` and reading a body (Chronos's `JobDeserializer`, with
the stand-in's stricter checks) is `devcluster.chronos.parse`; both are re-exported here, so the
stand-in and its tests use this one module.

Rendering follows Chronos's `JobSerializer` (field names and order), plus Chronos 3's `concurrent`,
`maxCompletionTime` and `container.networkInfos`.

The graph functions mirror `JobGraph`: dependent jobs hang off their parents, a dependent job with
several parents runs when each parent has finished once more (Chronos counts finishes per edge), and
`/graph/csv` lists `node,<name>,<last state>,<status>` then `link,<parent>,<child>` lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from devcluster.chronos.model import (
    CONSTRAINT_OPERATORS,
    DEFAULT_CPUS,
    DEFAULT_DISK,
    DEFAULT_MEM,
    KINDS,
    Constraint,
    Container,
    EnvironmentVariable,
    ExternalVolume,
    Fetch,
    Job,
    JobError,
    KeyValue,
    Network,
    PortMapping,
    Volume,
    job_schedule,
)
from devcluster.chronos.parse import parse_job
from wharf.contracts import chronos_schedule as sched

__all__ = [
    "CONSTRAINT_OPERATORS", "DEFAULT_CPUS", "DEFAULT_DISK", "DEFAULT_MEM", "KINDS", "Constraint", "Container",
    "EdgeCounts", "EnvironmentVariable", "ExternalVolume", "Fetch", "Job", "JobError", "KeyValue", "Network",
    "PortMapping", "Volume", "check_acyclic", "check_dependencies", "check_parents", "children_of",
    "dependent_started", "graph_csv", "job_schedule", "last_state", "parse_job", "ready_dependents", "to_json",
    "without_job",
]

STATUSES = ("idle", "queued", "running")


# --- rendering -----------------------------------------------------------------------------------

def _pairs(pairs: Iterable[KeyValue]) -> list[dict[str, str]]:
    return [{"key": pair.key, "value": pair.value} for pair in pairs]


def _container_json(container: Container) -> dict[str, Any]:
    body: dict[str, Any] = {"type": container.type, "image": container.image, "network": container.network}
    if container.network_name is not None:
        body["networkName"] = container.network_name
    if container.networks:
        body["networkInfos"] = [
            {"name": network.name, **({"protocol": network.protocol} if network.protocol else {}),
             "labels": _pairs(network.labels),
             "portMappings": [{"hostPort": mapping.host_port, "containerPort": mapping.container_port,
                               **({"protocol": mapping.protocol} if mapping.protocol else {})}
                              for mapping in network.port_mappings]}
            for network in container.networks]
    volumes = []
    for volume in container.volumes:
        item: dict[str, Any] = {}
        if volume.host_path is not None:
            item["hostPath"] = volume.host_path
        item["containerPath"] = volume.container_path
        if volume.mode is not None:
            item["mode"] = volume.mode
        if volume.external is not None:
            item["external"] = {"name": volume.external.name, "provider": volume.external.provider,
                                "options": _pairs(volume.external.options)}
        volumes.append(item)
    body["volumes"] = volumes
    body["forcePullImage"] = container.force_pull_image
    body["parameters"] = _pairs(container.parameters)
    return body


def to_json(job: Job) -> dict[str, Any]:
    """The job as Chronos lists it in `GET /v1/scheduler/jobs`, field names and order included."""
    body: dict[str, Any] = {
        "name": job.name, "command": job.command, "shell": job.shell, "epsilon": job.epsilon,
        "executor": job.executor, "executorFlags": job.executor_flags, "taskInfoData": job.task_info_data,
        "retries": job.retries, "owner": job.owner, "ownerName": job.owner_name,
        "description": job.description, "async": job.async_, "successCount": job.success_count,
        "errorCount": job.error_count, "lastSuccess": job.last_success, "lastError": job.last_error,
        "cpus": job.cpus, "disk": job.disk, "mem": job.mem, "disabled": job.disabled,
        "concurrent": job.concurrent, "softError": job.soft_error,
        "dataProcessingJobType": job.data_processing_job_type,
        "errorsSinceLastSuccess": job.errors_since_last_success,
        "maxCompletionTime": job.max_completion_time,
        "fetch": [{"uri": item.uri, "executable": item.executable, "cache": item.cache, "extract": item.extract,
                   **({"output_file": item.output_file} if item.output_file else {})} for item in job.fetch],
        "uris": list(job.uris),
        "environmentVariables": [{"name": item.name, "value": item.value} for item in job.environment_variables],
        "arguments": list(job.arguments),
        "highPriority": job.high_priority,
        "runAsUser": job.run_as_user,
    }
    if job.container is not None:
        body["container"] = _container_json(job.container)
    body["constraints"] = [[item.attribute, item.operator, item.value] for item in job.constraints]
    if job.parents:
        body["parents"] = list(job.parents)
    else:
        body["schedule"] = job.schedule
        body["scheduleTimeZone"] = job.schedule_time_zone
    return body


# --- the dependency graph ------------------------------------------------------------------------
# Pure functions over a mapping name -> Job (the jobs Chronos knows). Edges run parent -> child.

EdgeCounts = Mapping[tuple[str, str], int]


def children_of(jobs: Mapping[str, Job], name: str) -> tuple[str, ...]:
    """The dependent jobs that list `name` as a parent, sorted."""
    return tuple(sorted(child.name for child in jobs.values() if name in child.parents))


def check_parents(jobs: Mapping[str, Job], job: Job) -> None:
    """Refuse `job` if any of its parents is not a known job, naming the missing ones.

    Chronos itself silently drops a dependent job whose parents are not all registered; wharf's
    stand-in rejects it instead, so a typo cannot make a job vanish.
    """
    missing = [parent for parent in job.parents if parent not in jobs and parent != job.name]
    if missing:
        names = ", ".join(f"'{parent}'" for parent in missing)
        raise JobError(job.name, "parents", f"unknown parent{'s' if len(missing) > 1 else ''} {names}")


def check_acyclic(jobs: Mapping[str, Job], job: Job) -> None:
    """Refuse `job` (new, or replacing its namesake) if its parents would close a cycle, as Chronos's DAG does."""
    graph = {**jobs, job.name: job}
    path = _path_to(graph, job.name, job.parents, (job.name,))
    if path is not None:
        raise JobError(job.name, "parents", "parents would form a cycle: " + " depends on ".join(path))


def check_dependencies(jobs: Mapping[str, Job], job: Job) -> None:
    """Both checks a dependent job must pass before it joins `jobs`."""
    check_parents(jobs, job)
    check_acyclic(jobs, job)


def _path_to(graph: Mapping[str, Job], target: str, parents: Iterable[str],
             path: tuple[str, ...]) -> tuple[str, ...] | None:
    """A chain of parents from the end of `path` back to `target`, if there is one (depth first)."""
    for parent in parents:
        if parent == target:
            return (*path, parent)
        if parent in path or parent not in graph:
            continue
        found = _path_to(graph, target, graph[parent].parents, (*path, parent))
        if found is not None:
            return found
    return None


def ready_dependents(jobs: Mapping[str, Job], finished: str,
                     counts: EdgeCounts) -> tuple[tuple[str, ...], dict[tuple[str, str], int]]:
    """The children to enqueue now that `finished` succeeded, and the updated edge counts.

    Chronos's rule (`JobGraph.getExecutableChildren`): a child with one parent always runs; for a
    child with several, the edge from `finished` counts one more finish, and the child runs when
    that count equals the smallest count over all its parent edges, i.e. once every parent has
    finished since the child last started (`dependent_started` resets its edges). Disabled children
    are counted but not returned. Chronos also calls this after a final failure of a job with
    `softError` set, and after `PUT /job/success/<name>`.
    """
    updated = dict(counts)
    ready = []
    for child in children_of(jobs, finished):
        parents = jobs[child].parents
        if len(parents) > 1:
            updated[(finished, child)] = updated.get((finished, child), 0) + 1
            if updated[(finished, child)] != min(updated.get((parent, child), 0) for parent in parents):
                continue
        if not jobs[child].disabled:
            ready.append(child)
    return tuple(ready), updated


def dependent_started(jobs: Mapping[str, Job], name: str, counts: EdgeCounts) -> dict[tuple[str, str], int]:
    """Reset the counts on the edges into `name`, as Chronos does when one of its tasks starts."""
    parents = jobs[name].parents if name in jobs else ()
    return {**counts, **{(parent, name): 0 for parent in parents}}


def without_job(jobs: Mapping[str, Job], name: str) -> dict[str, Job]:
    """The jobs after deleting `name`: children with other parents lose it, as in Chronos.

    A child whose only parent is `name` would be orphaned (Chronos drops it silently on its next
    reload); wharf's stand-in refuses the deletion instead, naming the child.
    """
    orphans = [child for child in children_of(jobs, name) if jobs[child].parents == (name,)]
    if orphans:
        names = ", ".join(f"'{child}'" for child in orphans)
        raise JobError(name, "parents", f"cannot delete: {names} depend{'s' if len(orphans) == 1 else ''} "
                                        "only on it; delete or re-parent them first")
    remaining: dict[str, Job] = {}
    for key, job in jobs.items():
        if key == name:
            continue
        if name in job.parents:
            job = replace(job, parents=tuple(parent for parent in job.parents if parent != name))
        remaining[key] = job
    return remaining


def last_state(job: Job) -> str:
    """`fresh` (never ran), `success` or `failure`: whichever of lastSuccess/lastError is later."""
    if not job.last_success and not job.last_error:
        return "fresh"
    if not job.last_error:
        return "success"
    if not job.last_success:
        return "failure"
    succeeded, failed = sched.parse_datetime(job.last_success), sched.parse_datetime(job.last_error)
    return "success" if succeeded > failed else "failure"


def graph_csv(jobs: Mapping[str, Job], states: Mapping[str, str],
              running: Mapping[str, int] | None = None) -> str:
    """The body of `GET /v1/scheduler/graph/csv`, sorted by name (Chronos's order is a hash map's).

    `states` gives each job's status, `idle` (the default), `queued` or `running`; Chronos prints a
    running job as `<n> running`, with n from `running` (default 1).
    """
    lines = []
    for name in sorted(jobs):
        status = states.get(name, "idle")
        if status not in STATUSES:
            raise ValueError(f"status of job '{name}' must be one of {', '.join(STATUSES)}, got {status!r}")
        if status == "running":
            status = f"{(running or {}).get(name, 1)} running"
        lines.append(f"node,{name},{last_state(jobs[name])},{status}\n")
    for name in sorted(jobs):
        lines.extend(f"link,{parent},{name}\n" for parent in sorted(jobs[name].parents) if parent in jobs)
    return "".join(lines)
