"""Marathon's app-definition contract: validation, 422 error bodies and the defaults GET returns;
the label wharf stamps on an app it deploys (`COMMIT_LABEL`).

The field rules follow Marathon 1.10's RAML types (`types/app.raml` and the types it uses). They
supersede the 1.7 JSON schema where the two differ: the RAML-only fields (`check`, `tty`, `role`,
`resourceLimits`, `container.linuxInfo`, secret volumes) are accepted, `container.appc` is gone, and
RAML's tighter bounds apply (`cpus >= 0.001`, no `..` inside an id segment, both upgrade-strategy
capacities required). Like Marathon, reading comes first: only an app that passes the field rules
goes on to the cross-field rules Marathon runs afterwards (cmd/args/container, constraint
operators, health-check ports, networking, secrets).

Deliberate differences from Marathon: enum values must match exactly (Marathon's reader also takes
lowercase); messages are readable sentences, and a reading failure is reported like any other
violation (Marathon answers those with "Invalid JSON" and play-json keys; `error_body` takes the
message); secrets count as enabled; persistent/external volume semantics, resource-role checks and
feature flags are not modelled.

This module is the entry point: the field rules are in `marathon_schema`, ids, networks and ports
in `marathon_model`, the cross-field rules in `marathon_rules`; the normaliser is here. The product
(`marathon_apps`), the Marathon stand-in and the tests import them from here. Pure functions,
standard library only.
"""

from __future__ import annotations

import copy
from typing import Any

from wharf.contracts.marathon_model import (
    DEFAULT_PORT,
    InvalidAppId,
    effective_ports,
    given_port_definitions,
    given_port_mappings,
    is_host,
    networks,
    parent_id,
    parse_app_id,
)
from wharf.contracts.marathon_rules import CONSTRAINT_OPERATORS, error_body, validate_app
from wharf.contracts.marathon_schema import APP_FIELDS, HEALTH_CHECK_PROTOCOLS, Violation

__all__ = [
    "APP_FIELDS", "COMMIT_LABEL", "CONSTRAINT_OPERATORS", "HEALTH_CHECK_PROTOCOLS", "InvalidAppId", "Violation",
    "error_body", "normalize_app", "parse_app_id", "validate_app",
]

COMMIT_LABEL = "wharf.commit"  # the config repository's commit that last deployed the app


# --- defaults, as GET /v2/apps/{id} shows them ---------------------------------------------------

_APP_DEFAULTS: dict[str, Any] = {
    "instances": 1, "cpus": 1, "mem": 128, "disk": 0, "gpus": 0, "executor": "",
    "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300, "requirePorts": False,
    "killSelection": "YOUNGEST_FIRST", "labels": {}, "env": {}, "secrets": {}, "constraints": [],
    "healthChecks": [], "readinessChecks": [], "dependencies": [], "fetch": [],
}
_HEALTH_DEFAULTS = {"protocol": "HTTP", "gracePeriodSeconds": 300, "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3, "timeoutSeconds": 20, "delaySeconds": 15,
                    "ipProtocol": "IPv4"}
_READINESS_DEFAULTS = {"name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
                       "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
                       "preserveLastResponse": False}
_CHECK_DEFAULTS = {"intervalSeconds": 60, "timeoutSeconds": 20, "delaySeconds": 15}
_ARTIFACT_DEFAULTS = {"extract": True, "executable": False, "cache": False}
_RESIDENCY_DEFAULTS = {"relaunchEscalationTimeoutSeconds": 3600, "taskLostBehavior": "WAIT_FOREVER"}
_ARCHIVES = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")
_DROPPED = ("ports", "uris", "ipAddress")  # deprecated fields Marathon translates and never returns


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _port_mapping(mapping: dict, bridge: bool) -> dict:
    out = {"containerPort": 0, **mapping}
    if bridge:
        out.setdefault("hostPort", 0)
    out.setdefault("servicePort", 0)
    out.setdefault("protocol", "tcp")
    out.setdefault("labels", {})
    if not out.get("networkNames"):
        out.pop("networkNames", None)
    return out


def _port_definition(definition: dict) -> dict:
    out = {"port": definition.get("port", 0), "protocol": definition.get("protocol", "tcp")}
    out.update({k: definition[k] for k in ("name", "labels") if definition.get(k)})
    return out


def _container(app: dict, resolved: list[dict]) -> dict | None:
    given = app.get("container")
    if given is None:
        if is_host(resolved):
            return None
        given = {"type": "MESOS"}
    out = {k: v for k, v in given.items() if k not in ("docker", "portMappings")}
    out.setdefault("type", "DOCKER")
    out.setdefault("volumes", [])
    if given.get("docker") is not None:
        docker = {k: v for k, v in given["docker"].items() if k not in ("network", "portMappings")}
        docker.setdefault("forcePullImage", False)
        if out["type"] == "DOCKER":
            docker.setdefault("privileged", False)
            docker.setdefault("parameters", [])
        out["docker"] = docker
    if not is_host(resolved):
        mappings = given_port_mappings(app)[1]
        bridge = any(n["mode"] == "container/bridge" for n in resolved)
        out["portMappings"] = [_port_mapping(m, bridge) for m in
                               ([dict(DEFAULT_PORT)] if mappings is None else mappings)]
    return out


def _health_check(check: dict, has_ports: bool) -> dict:
    out = {**_HEALTH_DEFAULTS, **check}
    if out["protocol"] in ("HTTP", "HTTPS"):
        out.setdefault("ignoreHttp1xx", False)
    if out["protocol"] != "COMMAND" and has_ports and "port" not in out:
        out.setdefault("portIndex", 0)
    return out


def _resident(app: dict) -> bool:
    return any("persistent" in v for v in (app.get("container") or {}).get("volumes") or [])


def normalize_app(app: dict) -> dict:
    """The app as Marathon stores and returns it: canonical id, defaults filled, deprecated fields
    translated (`ports`, `uris`, `ipAddress`, `docker.network`, `docker.portMappings`).

    Expects an app that `validate_app` accepts. Service ports stay 0: assigning them is the
    server's job, as are `version` and `versionInfo`. Idempotent.
    """
    src = _drop_nulls(copy.deepcopy(app))
    app_id = parse_app_id(src["id"])
    resolved = [{k: v for k, v in n.items() if k != "labels" or v} for n in networks(src)]
    resident = _resident(src)
    out: dict[str, Any] = {k: v for k, v in src.items() if k not in _DROPPED}
    for key, default in _APP_DEFAULTS.items():
        out.setdefault(key, copy.deepcopy(default))
    out["id"] = app_id
    out["dependencies"] = [parse_app_id(d, parent_id(app_id)) for d in out["dependencies"]]
    if not out.get("args"):
        out.pop("args", None)
    if not out.get("fetch") and src.get("uris"):
        out["fetch"] = [{"uri": u, "extract": u.endswith(_ARCHIVES)} for u in src["uris"]]
    out["fetch"] = [{**_ARTIFACT_DEFAULTS, **a} for a in out["fetch"]]
    out["networks"] = resolved
    container = _container(src, resolved)
    if container is None:
        out.pop("container", None)
    else:
        out["container"] = container
    if is_host(resolved):
        given = given_port_definitions(src)
        out["portDefinitions"] = [_port_definition(d) for d in
                                  ([dict(DEFAULT_PORT)] if given is None else given)]
    else:
        out.pop("portDefinitions", None)
        out["requirePorts"] = False
    has_ports = bool(effective_ports(out))
    out["healthChecks"] = [_health_check(c, has_ports) for c in out["healthChecks"]]
    out["readinessChecks"] = [{**_READINESS_DEFAULTS, **c} for c in out["readinessChecks"]]
    if "check" in out:
        out["check"] = {**_CHECK_DEFAULTS, **out["check"]}
        if "http" in out["check"]:
            out["check"]["http"] = {"scheme": "HTTP", **out["check"]["http"]}
    out.setdefault("upgradeStrategy", {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0} if resident
                   else {"minimumHealthCapacity": 1, "maximumOverCapacity": 1})
    unreachable = out.get("unreachableStrategy", "disabled" if resident else {})
    out["unreachableStrategy"] = unreachable if unreachable == "disabled" else \
        {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0, **unreachable}
    if resident or "residency" in out:
        out["residency"] = {**_RESIDENCY_DEFAULTS, **out.get("residency", {})}
    return out
