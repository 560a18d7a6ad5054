"""An app spec (one rendered YAML file under `apps/`) to a Marathon app definition. Pure.

Every Marathon `AppDefinition` field passes through as written. These shorthands expand into it
(and merge with what the spec also says directly; their expanders are `marathon_apps.shorthands`):

    image: wharf/busybox            -> container.docker.image (type DOCKER)
    ports: [{name: http, protocol: tcp, hostPort: 0, containerPort: 80, servicePort: 0}]
                                    -> portDefinitions (host networking) or container.portMappings
    health: {http: /health, port: http, grace: 30, interval: 10, timeout: 5, failures: 3}
            (or tcp: true, or command: "..."; a list for several)   -> healthChecks
    lb: {group: external, vhost: web.local, path: /, mode: http, balance: roundrobin, sticky: true,
         redirect_to_https: false, backend_weight: 1, port: 10080}
            (a mapping is port 0 plus HAPROXY_GROUP; a list gives each port)  -> HAPROXY_* labels
    service: {name: web, tags: [a, b], check: {http: /health, interval: 10s, timeout: 1s},
              ports: {"80": {name: web-http}}}                   -> registrator SERVICE_* labels
    autoscale: {target_rps: 50, min: 1, max: 5}                  -> wharf.autoscale.* labels
    after: [api]                    -> dependencies (relative ids resolve against the app's folder)
    parameters: {memory-swap: 128m} -> container.docker.parameters
    swap: false                     -> memory-swap equal to mem (the container gets no swap)
    strategy: bluegreen             -> label wharf.strategy: the app deploys blue/green
                                       (`marathon_apps.bluegreen`; default `rolling`, Marathon's own upgrade)

The id is the file's path under `apps/` (`apps/shop/web.yaml` -> `/shop/web`); an `id` in the spec
must agree. Every app gets the label `wharf.owner`, which marks it as one wharf may prune.
The result is checked against Marathon's app contract (`wharf.contracts.marathon_app`, the rules
the Marathon stand-in enforces too), and every marathon-lb `HAPROXY_*` value (from `lb` or written in
`labels`) with the renderer's own parsers (`wharf.contracts.marathon_lb`), so a value the renderer
would ignore is refused here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from marathon_apps.shorthands import AUTOSCALE_PREFIX as AUTOSCALE_PREFIX  # re-exported for its users
from marathon_apps.shorthands import (
    Problems,
    expand_after,
    expand_autoscale,
    expand_health,
    expand_image,
    expand_lb,
    expand_parameters,
    expand_ports,
    expand_service,
    kind_of,
)
from wharf.configrepo import Spec, SpecError
from wharf.contracts.marathon_app import COMMIT_LABEL as COMMIT_LABEL  # re-exported for the room
from wharf.contracts.marathon_app import InvalidAppId, normalize_app, parse_app_id, validate_app
from wharf.contracts.marathon_lb import DEPLOYMENT_ALT_PORT, label_problem, service_ports

OWNER_LABEL = "wharf.owner"
STRATEGY_LABEL = "wharf.strategy"
PREVIOUS_LABEL = "wharf.previous"
STRATEGIES = ("rolling", "bluegreen")
DEFAULT_OWNER = "wharf"

SHORTHANDS = ("image", "ports", "health", "lb", "service", "autoscale", "after", "parameters", "swap", "strategy")
_DERIVED = {"container": "image", "portDefinitions": "ports", "healthChecks": "health",
            "labels": "lb", "dependencies": "after"}


@dataclass(frozen=True)
class App:
    """One app of the repository: its Marathon definition (as sent), and where it came from."""

    id: str
    definition: dict[str, Any]
    spec: Spec

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Absolute ids of the apps this one runs after."""
        parent = self.id.rsplit("/", 1)[0] or "/"
        return tuple(parse_app_id(d, parent) for d in self.definition.get("dependencies") or [])

    def normalized(self) -> dict[str, Any]:
        """The definition as Marathon stores it (defaults filled in), for comparing with the live app."""
        return normalize_app(self.definition)


def _spec_path(marathon_path: str) -> tuple[str | int, ...]:
    """`/healthChecks(0)/path` -> `("healthChecks", 0, "path")`."""
    out: list[str | int] = []
    for part in marathon_path.strip("/").split("/"):
        if not part:
            continue
        match = re.fullmatch(r"(.*?)\((\d+)\)", part)
        if match:
            if match.group(1):
                out.append(match.group(1))
            out.append(int(match.group(2)))
        else:
            out.append(part)
    return tuple(out)


def _violation_field(spec: Spec, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Where a Marathon violation points in the spec: the field itself, or the shorthand it came from."""
    if not path or path[:1] in spec.lines or path[0] in spec.data:
        return path
    shorthand = _DERIVED.get(str(path[0]))
    if shorthand == "lb":
        shorthand = next((s for s in ("lb", "service", "autoscale") if s in spec.data), None)
    if shorthand == "image":
        shorthand = next((s for s in ("image", "ports", "parameters", "swap") if s in spec.data), None)
    return (shorthand, *path[1:]) if shorthand and shorthand in spec.data else path


def expand(spec: Spec, owner: str = DEFAULT_OWNER) -> tuple[dict[str, Any], list[SpecError]]:
    """The Marathon app definition of one spec, and what is wrong with it (empty when valid)."""
    problems = Problems(spec)
    data = spec.data
    app: dict[str, Any] = {k: copy.deepcopy(v) for k, v in data.items() if k not in SHORTHANDS}
    try:
        app_id = parse_app_id("/" + spec.name)
    except InvalidAppId as exc:
        problems.add((), f"the file's path {spec.name!r} is not a valid Marathon app id (each folder and file "
                         f"name: lowercase letters, digits, hyphens, dots): {exc}")
        return app, problems.errors
    if "id" in data:
        try:
            given = parse_app_id(data["id"]) if isinstance(data["id"], str) else None
        except InvalidAppId as exc:
            problems.add(("id",), f"not a valid Marathon app id: {exc}")
            given = app_id
        if given != app_id:
            problems.add(("id",), f"must be {app_id} (the file's path under apps/), or be left out")
    app["id"] = app_id
    if "image" in data:
        expand_image(app, data, problems)
    names = expand_ports(app, data, problems) if "ports" in data else []
    if "health" in data:
        expand_health(app, data, names, problems)
    labels: dict[str, str] = {}
    for key, expander in (("lb", expand_lb), ("service", expand_service), ("autoscale", expand_autoscale)):
        if key in data:
            labels.update(expander(data, problems))
    if "after" in data:
        expand_after(app, data, problems)
    if "parameters" in data or "swap" in data:
        expand_parameters(app, data, problems)
    given_labels = app.get("labels")
    if given_labels is not None and not isinstance(given_labels, dict):
        problems.add(("labels",), f"must be a mapping, not {kind_of(given_labels)}")
        given_labels = {}
    strategy = data.get("strategy", "rolling")
    if strategy not in STRATEGIES:
        problems.add(("strategy",), f"must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    elif strategy == "bluegreen":
        labels[STRATEGY_LABEL] = "bluegreen"
    for reserved in (OWNER_LABEL, COMMIT_LABEL, STRATEGY_LABEL, PREVIOUS_LABEL):
        if reserved in (given_labels or {}):
            problems.add(("labels", reserved), "is written by wharf; leave it out")
    for key, value in (given_labels or {}).items():
        problem = label_problem(str(key), value)
        if problem:
            problems.add(("labels", key), f"{value!r} {problem}")
    app["labels"] = {**(given_labels or {}), **labels, OWNER_LABEL: owner}
    if strategy == "bluegreen":
        for field_path, reason in bluegreen_problems(app):
            problems.add(field_path if field_path[0] in data else ("strategy",), reason)
    if problems.errors:
        return app, problems.errors
    for violation in validate_app(app):
        path = _violation_field(spec, _spec_path(violation.path))
        problems.add(path, violation.message)
    return app, problems.errors


def bluegreen_problems(app: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Why an app cannot deploy blue/green: (spec field, reason) pairs."""
    shared = service_ports(app).get(0)
    problems: list[tuple[tuple[str, ...], str]] = []
    if not shared:
        problems.append((("ports",), "bluegreen needs a fixed service port for the first port (its "
                                     "servicePort, or lb.port): both colours are routed on it"))
    alt = str((app.get("labels") or {}).get(DEPLOYMENT_ALT_PORT) or "")
    if not alt.isdigit():
        problems.append((("labels",), f"bluegreen needs {DEPLOYMENT_ALT_PORT}: the service port the "
                                      "new colour holds while the old one has the shared port"))
    elif int(alt) == shared:
        problems.append((("labels",), f"{DEPLOYMENT_ALT_PORT} must differ from the shared service port {shared}"))
    return problems


def expand_all(specs: list[Spec], owner: str = DEFAULT_OWNER) -> Iterator[tuple[App | None, list[SpecError]]]:
    """`expand` over many specs."""
    for spec in specs:
        definition, errors = expand(spec, owner)
        yield (None if errors else App(definition["id"], definition, spec)), errors


def label_owner(app: Mapping[str, Any]) -> str | None:
    """The `wharf.owner` of a live app, if wharf manages it."""
    return (app.get("labels") or {}).get(OWNER_LABEL)
