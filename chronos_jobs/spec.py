"""Job spec -> Chronos job: one YAML document per job, Chronos's own field names plus two shorthands.

A spec is what a file in the config repository's `jobs/` says after rendering. It uses Chronos's
fields as Chronos names them (`name`, `command`, `schedule`, `parents`, `container`, ...), plus:
- `image: wharf/busybox:latest` for `container: {type: DOCKER, image: ..., network: HOST}`;
- `env: {KEY: value}` for `environmentVariables: [{name: KEY, value: "value"}]`.

`to_chronos(spec)` checks one spec on its own (names, types, the schedule with its reason, exactly
one of `schedule` / `parents`) and returns the body to POST: scheduled jobs go to `/iso8601`,
dependent ones to `/dependency` (`endpoint`). Checks across jobs (parents exist, no cycles) are in
`chronos_jobs.graph`. Pure: no I/O; an empty schedule start ("now") is only checked for syntax.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from wharf.contracts import chronos_schedule as sched
from wharf.errors import BadInput

__all__ = ["NAME_PATTERN", "OWNER_VARIABLE", "JobSpecError", "endpoint", "owner_of", "to_chronos", "with_owner"]

# Chronos 3 refuses any name that does not fully match this (its docs still show an older pattern).
NAME_PATTERN = re.compile(r"[\w.-]+", re.ASCII)
# Chronos jobs have no labels: wharf marks the jobs it owns with this environment variable.
OWNER_VARIABLE = "WHARF_OWNER"

_TEXT = ("command", "scheduleTimeZone", "epsilon", "owner", "ownerName", "description", "runAsUser")
_FLAGS = ("shell", "disabled", "concurrent", "softError")
_RESOURCES = ("cpus", "mem", "disk")
FIELDS = frozenset({"name", "schedule", "parents", "arguments", "retries", "container",
                    "environmentVariables", "constraints", "fetch", *_TEXT, *_FLAGS, *_RESOURCES})
SHORTHANDS = frozenset({"image", "env"})
_NOW_FOR_SYNTAX = datetime(2000, 1, 1, tzinfo=UTC)


FieldPath = tuple[str | int, ...]


def _path(dotted: str) -> FieldPath:
    """`container.parameters[0]` -> `("container", "parameters", 0)`."""
    parts: list[str | int] = []
    for piece in dotted.split("."):
        name, *indexes = piece.replace("]", "").split("[")
        parts.append(name)
        parts.extend(int(index) for index in indexes)
    return tuple(parts)


class JobSpecError(BadInput, ValueError):
    """One field of one spec is wrong: `field` is its dotted name, `path` the same as a tuple."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        self.path: FieldPath = _path(field)
        super().__init__(f"{field}: {reason}")


def endpoint(job: Mapping[str, Any]) -> str:
    """`dependency` for a job with parents, `iso8601` for a scheduled one."""
    return "dependency" if job.get("parents") else "iso8601"


def owner_of(job: Mapping[str, Any]) -> str | None:
    """The wharf owner recorded in a Chronos job, or None if wharf did not write it."""
    for item in job.get("environmentVariables") or []:
        if isinstance(item, Mapping) and item.get("name") == OWNER_VARIABLE:
            return str(item.get("value"))
    return None


def with_owner(job: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """The job with wharf's owner marker set to `owner` (replacing any marker it had)."""
    variables = [item for item in job.get("environmentVariables") or [] if item.get("name") != OWNER_VARIABLE]
    return {**job, "environmentVariables": [*variables, {"name": OWNER_VARIABLE, "value": owner}]}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _check_text(spec: Mapping[str, Any], key: str) -> None:
    if key in spec and not isinstance(spec[key], str):
        raise JobSpecError(key, f"must be a string, got {spec[key]!r}")


def _check_strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise JobSpecError(where, f"must be a list of strings, got {value!r}")
    return value


def _schedule(spec: Mapping[str, Any]) -> None:
    text = spec["schedule"]
    if not isinstance(text, str):
        raise JobSpecError("schedule", f"must be a string R[n]/<start>/<period>, got {text!r}")
    try:
        sched.parse(text, spec.get("scheduleTimeZone") or None, now=_NOW_FOR_SYNTAX)
    except sched.ScheduleError as error:
        # the parser names the schedule; the field already does, so keep only the reason
        reason = str(error).removeprefix(f"schedule '{text}': ")
        field = "scheduleTimeZone" if "scheduleTimeZone" in reason else "schedule"
        raise JobSpecError(field, f"'{text}': {reason}" if field == "schedule" else reason) from None


def _container(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    if "image" in spec:
        if "container" in spec:
            raise JobSpecError("image", "give either 'image' or 'container', not both")
        if not isinstance(spec["image"], str) or not spec["image"]:
            raise JobSpecError("image", f"must be a Docker image name, got {spec['image']!r}")
        return {"type": "DOCKER", "image": spec["image"], "network": "HOST"}
    if "container" not in spec:
        return None
    container = spec["container"]
    if not isinstance(container, Mapping):
        raise JobSpecError("container", f"must be a mapping, got {container!r}")
    if not isinstance(container.get("image"), str) or not container["image"]:
        raise JobSpecError("container.image", "is required: the Docker image to run")
    for index, parameter in enumerate(container.get("parameters") or []):
        if not (isinstance(parameter, Mapping) and isinstance(parameter.get("key"), str)
                and isinstance(parameter.get("value"), str)):
            raise JobSpecError(f"container.parameters[{index}]", "must be {key: string, value: string}")
    return {"type": "DOCKER", "network": "HOST", **container}


def _environment(spec: Mapping[str, Any]) -> list[dict[str, str]] | None:
    if "env" in spec:
        if "environmentVariables" in spec:
            raise JobSpecError("env", "give either 'env' or 'environmentVariables', not both")
        env = spec["env"]
        if not isinstance(env, Mapping):
            raise JobSpecError("env", f"must be a mapping of variable names to values, got {env!r}")
        variables = []
        for name, value in env.items():
            if not isinstance(value, str | int | float | bool):
                raise JobSpecError(f"env.{name}", f"must be a string or number, got {value!r}")
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            variables.append({"name": str(name), "value": shown})
    elif "environmentVariables" in spec:
        variables = spec["environmentVariables"]
        if not isinstance(variables, list):
            raise JobSpecError("environmentVariables", "must be a list of {name, value}")
        for index, item in enumerate(variables):
            if not (isinstance(item, Mapping) and isinstance(item.get("name"), str)
                    and isinstance(item.get("value"), str)):
                raise JobSpecError(f"environmentVariables[{index}]", "must be {name: string, value: string}")
    else:
        return None
    for index, item in enumerate(variables):
        if item["name"] == OWNER_VARIABLE:
            field = f"env.{OWNER_VARIABLE}" if "env" in spec else f"environmentVariables[{index}]"
            raise JobSpecError(field, f"{OWNER_VARIABLE} is wharf's owner marker and is set by wharf")
    return [dict(item) for item in variables]


def to_chronos(spec: Any, default_name: str | None = None) -> dict[str, Any]:
    """The Chronos job body for one spec; raises JobSpecError naming the field and the reason.

    `name` may be left out when `default_name` (the spec file's name) is given.
    """
    if not isinstance(spec, Mapping):
        raise JobSpecError("job", f"a job spec must be a mapping of fields, got {type(spec).__name__}")
    unknown = sorted(set(spec) - FIELDS - SHORTHANDS)
    if unknown:
        raise JobSpecError(unknown[0], "unknown field (see the job spec in the README)")
    name = _name(spec, default_name)
    for key in _TEXT:
        _check_text(spec, key)
    job: dict[str, Any] = {"name": name, **_schedule_or_parents(spec, name)}
    _check_settings(spec)
    container = _container(spec)
    if not spec.get("command") and container is None:
        raise JobSpecError("command", "is required (unless the job runs an image)")

    for key in sorted(FIELDS - {"name", "schedule", "parents", "container", "environmentVariables"}):
        if key in spec:
            job[key] = spec[key]
    if container is not None:
        job["container"] = container
    variables = _environment(spec)
    if variables is not None:
        job["environmentVariables"] = variables
    return job


def _name(spec: Mapping[str, Any], default_name: str | None) -> str:
    """The job's name: the spec's `name`, else the file's name; Chronos's rule for names."""
    name = spec.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise JobSpecError("name", "is required" if name is None else f"must be a string, got {name!r}")
    if not NAME_PATTERN.fullmatch(name):
        origin = "" if "name" in spec else " (the file's name, as no 'name' is given)"
        raise JobSpecError("name", f"'{name}'{origin} is invalid: Chronos allows letters, digits, '_', '.' and '-'")
    return name


def _schedule_or_parents(spec: Mapping[str, Any], name: str) -> dict[str, Any]:
    """`{"schedule": ...}` for a scheduled job, `{"parents": [...]}` for a dependent one (exactly one)."""
    has_schedule, has_parents = spec.get("schedule") is not None, spec.get("parents") is not None
    if has_schedule and has_parents:
        raise JobSpecError("parents", "give exactly one of 'schedule' (a scheduled job) or 'parents' "
                                   "(a dependent job), not both")
    if not has_schedule and not has_parents:
        raise JobSpecError("schedule", "give exactly one of 'schedule' (a scheduled job) or 'parents' "
                                    "(a dependent job)")
    if has_schedule:
        _schedule(spec)
        return {"schedule": spec["schedule"]}
    parents = _check_strings(spec["parents"], "parents")
    if not parents:
        raise JobSpecError("parents", "must name at least one parent job")
    for parent in parents:
        if parent == name:
            raise JobSpecError("parents", f"a job cannot be its own parent ('{name}')")
    if len(set(parents)) != len(parents):
        raise JobSpecError("parents", f"names a parent twice: {parents}")
    if "scheduleTimeZone" in spec:
        raise JobSpecError("scheduleTimeZone", "only a scheduled job has a time zone")
    return {"parents": list(parents)}


def _check_settings(spec: Mapping[str, Any]) -> None:
    """The fields passed through as given: epsilon, flags, retries, resources, arguments, constraints."""
    if "epsilon" in spec:
        try:
            sched.parse_period(spec["epsilon"])
        except sched.ScheduleError:
            raise JobSpecError("epsilon", f"bad duration '{spec['epsilon']}': not an ISO 8601 period") from None
    for key in _FLAGS:
        if key in spec and not isinstance(spec[key], bool):
            raise JobSpecError(key, f"must be true or false, got {spec[key]!r}")
    if "retries" in spec and (isinstance(spec["retries"], bool) or not isinstance(spec["retries"], int)
                              or spec["retries"] < 0):
        raise JobSpecError("retries", f"must be a whole number >= 0, got {spec['retries']!r}")
    for key in _RESOURCES:
        if key in spec and ((number := _number(spec[key])) is None or number < 0):
            raise JobSpecError(key, f"must be a number >= 0 (0: Chronos's default), got {spec[key]!r}")
    if "arguments" in spec:
        _check_strings(spec["arguments"], "arguments")
    for index, constraint in enumerate(spec.get("constraints") or []):
        if not (isinstance(constraint, list) and len(constraint) == 3 and all(isinstance(c, str) for c in constraint)):
            raise JobSpecError(f"constraints[{index}]", "must be [attribute, operator, value]")
        if constraint[1] not in ("EQUALS", "LIKE", "UNLIKE"):
            raise JobSpecError(f"constraints[{index}]", f"operator '{constraint[1]}' is not EQUALS, LIKE or UNLIKE")
