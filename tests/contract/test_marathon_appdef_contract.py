"""Our app-definition validator against Marathon's own contract (`../shared/upstream/marathon`).

The JSON schema (Marathon 1.7, Draft 4) and our validator must agree on a corpus of realistic
valid apps and of broken ones. Where the RAML (Marathon 1.10) differs from the schema, the RAML
wins, and the cases below document each difference: fields the schema refuses and we accept, and
rules the schema lacks and Marathon (hence we) applies.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.upstream import UPSTREAM
from wharf.contracts.marathon_app import APP_FIELDS, normalize_app, validate_app

jsonschema = pytest.importorskip("jsonschema")

pytestmark = pytest.mark.contract

API = UPSTREAM / "marathon" / "docs" / "docs" / "rest-api" / "public" / "api" / "v2"
if not (API / "schema" / "AppDefinition.json").is_file():
    pytest.skip(f"upstream Marathon artifacts not found at {API}", allow_module_level=True)

SCHEMA = jsonschema.Draft4Validator(json.loads((API / "schema" / "AppDefinition.json").read_text()))


def schema_accepts(app: Any) -> bool:
    return SCHEMA.is_valid(app)


def ours_accepts(app: Any) -> bool:
    return validate_app(app) == []


def names(path: str, expected: str) -> bool:
    """Whether an error path points at `expected` or inside it."""
    return path == expected or path.startswith((expected + "/", expected + "("))


# --- the corpus ----------------------------------------------------------------------------------

WEB = {
    "id": "/shop/frontend",
    "instances": 3,
    "cpus": 0.5,
    "mem": 256,
    "container": {
        "type": "DOCKER",
        "docker": {"image": "registry.local/shop/frontend:1.4.2", "network": "BRIDGE",
                   "forcePullImage": True},
        "portMappings": [{"containerPort": 8080, "hostPort": 0, "servicePort": 10080,
                          "protocol": "tcp", "name": "http"}],
        "volumes": [{"containerPath": "/var/log/app", "hostPath": "/var/log/shop", "mode": "RW"}],
    },
    "env": {"LOG_LEVEL": "info", "UPSTREAM": "http://catalog.marathon.mesos:8080"},
    "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com",
               "HAPROXY_0_REDIRECT_TO_HTTPS": "true"},
    "healthChecks": [{"protocol": "HTTP", "path": "/healthz", "portIndex": 0,
                      "gracePeriodSeconds": 60, "intervalSeconds": 10, "timeoutSeconds": 5,
                      "maxConsecutiveFailures": 3}],
    "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.2},
    "constraints": [["hostname", "UNIQUE"], ["rack_id", "GROUP_BY", "3"]],
    "dependencies": ["/shop/catalog"],
}

VALID = {
    "command only": {"id": "sleeper", "cmd": "sleep 3600", "cpus": 0.1, "mem": 32},
    "args only": {"id": "/tools/echo", "args": ["/bin/echo", "hello"], "instances": 0},
    "docker web service": WEB,
    "docker host networking": {
        "id": "/infra/marathon-lb",
        "instances": 2,
        "cpus": 1,
        "mem": 1024,
        "container": {"type": "DOCKER",
                      "docker": {"image": "mesosphere/marathon-lb:v1.14.1", "network": "HOST",
                                 "privileged": True,
                                 "parameters": [{"key": "ulimit", "value": "nofile=65536"}]}},
        "args": ["sse", "-m", "http://marathon.mesos:8080", "--group", "external"],
        "portDefinitions": [{"port": 80, "protocol": "tcp", "name": "http"},
                            {"port": 9090, "protocol": "tcp", "name": "stats"}],
        "requirePorts": True,
        "acceptedResourceRoles": ["*"],
        "healthChecks": [{"protocol": "HTTP", "path": "/_haproxy_health_check", "portIndex": 1}],
        "constraints": [["hostname", "UNIQUE"], ["public_ip", "CLUSTER", "true"]],
    },
    "command app with tcp check and backoff": {
        "id": "/batch/worker.v2",
        "cmd": "./worker --queue jobs",
        "user": "nobody",
        "fetch": [{"uri": "https://artifacts.local/worker.tgz", "extract": True}],
        "portDefinitions": [{"port": 0, "name": "metrics"}],
        "healthChecks": [{"protocol": "TCP", "portIndex": 0},
                         {"protocol": "COMMAND", "command": {"value": "test -f /tmp/ready"}}],
        "backoffSeconds": 5, "backoffFactor": 2.0, "maxLaunchDelaySeconds": 600,
        "taskKillGracePeriodSeconds": 30,
        "killSelection": "OLDEST_FIRST",
        "unreachableStrategy": {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 600},
        "constraints": [["rack_id", "MAX_PER", "2"], ["hostname", "LIKE", "web[0-9]+"],
                        ["hostname", "UNLIKE", "db.*"], ["zone", "IS", "eu-west-1a"]],
    },
    "mesos containerizer with docker image and secrets": {
        "id": "/payments/api",
        "cmd": "java -jar api.jar",
        "container": {"type": "MESOS", "docker": {"image": "payments/api:2.0"},
                      "portMappings": [{"containerPort": 8443, "name": "api"}]},
        "env": {"DB_PASSWORD": {"secret": "db"}, "MODE": "prod"},
        "secrets": {"db": {"source": "payments/db-password"}},
        "networks": [{"mode": "container", "name": "dcos"}],
        "readinessChecks": [{"name": "ready", "protocol": "HTTP", "path": "/ready",
                             "portName": "api", "intervalSeconds": 30, "timeoutSeconds": 10,
                             "httpStatusCodesForReady": [200, 204]}],
        "unreachableStrategy": "disabled",
    },
    "bridge with several ports and a mesos health check": {
        "id": "/monitoring/grafana",
        "container": {"docker": {"image": "grafana/grafana:9.5.2"},
                      "portMappings": [{"containerPort": 3000, "name": "http"},
                                       {"containerPort": 9100, "name": "metrics", "protocol": "udp"}]},
        "networks": [{"mode": "container/bridge"}],
        "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/api/health", "portIndex": 0,
                          "delaySeconds": 20}],
        "labels": {"HAPROXY_GROUP": "internal", "HAPROXY_0_PORT": "3000"},
        "gpus": 0,
        "disk": 512,
    },
}


def with_(base: dict, **changes: Any) -> dict:
    app = copy.deepcopy(base)
    app.update(changes)
    return app


def docker(image: Any = "nginx:1.25", **extra: Any) -> dict:
    return {"type": "DOCKER", "docker": {"image": image, **extra}}


CMD = {"id": "/app", "cmd": "sleep 1"}

# (app, the path our errors must name): invalid for the schema and for us
INVALID = {
    "bad id": (with_(CMD, id="My_App"), "/id"),
    "id with a space": (with_(CMD, id="/foo bar"), "/id"),
    "id starting with a hyphen": (with_(CMD, id="/-foo"), "/id"),
    "empty id": (with_(CMD, id=""), "/id"),
    "missing id": ({"cmd": "sleep 1"}, "/id"),
    "id not a string": (with_(CMD, id=42), "/id"),
    "negative cpus": (with_(CMD, cpus=-1), "/cpus"),
    "mem as a string": (with_(CMD, mem="512"), "/mem"),
    "negative disk": (with_(CMD, disk=-5), "/disk"),
    "negative instances": (with_(CMD, instances=-1), "/instances"),
    "fractional instances": (with_(CMD, instances=1.5), "/instances"),
    "fractional gpus": (with_(CMD, gpus=0.5), "/gpus"),
    "unknown top-level field": (with_(CMD, colour="blue"), "/colour"),
    "typo in a field name": (with_(CMD, healthcheck=[]), "/healthcheck"),
    "cmd and args": (with_(CMD, args=["sleep", "1"]), "/"),
    "empty cmd": (with_(CMD, cmd=""), "/cmd"),
    "args not strings": ({"id": "/app", "args": ["sleep", 1]}, "/args(1)"),
    "bad constraint operator": (with_(CMD, constraints=[["hostname", "NEAR"]]), "/constraints(0)"),
    "constraint with one element": (with_(CMD, constraints=[["hostname"]]), "/constraints(0)"),
    "constraint with four elements": (with_(CMD, constraints=[["a", "LIKE", "b", "c"]]), "/constraints(0)"),
    "constraint not a list": (with_(CMD, constraints=["hostname:UNIQUE"]), "/constraints(0)"),
    "bad health-check protocol": (with_(CMD, healthChecks=[{"protocol": "GRPC"}]), "/healthChecks(0)/protocol"),
    "lowercase health-check protocol": (with_(CMD, healthChecks=[{"protocol": "http"}]),
                                        "/healthChecks(0)/protocol"),
    "unknown health-check field": (with_(CMD, healthChecks=[{"protocol": "HTTP", "intervalSecs": 5}]),
                                   "/healthChecks(0)/intervalSecs"),
    "negative health-check port index": (with_(CMD, healthChecks=[{"portIndex": -1}]),
                                         "/healthChecks(0)/portIndex"),
    "health checks not a list": (with_(CMD, healthChecks={"protocol": "HTTP"}), "/healthChecks"),
    "minimumHealthCapacity 2": (with_(CMD, upgradeStrategy={"minimumHealthCapacity": 2,
                                                           "maximumOverCapacity": 1}),
                                "/upgradeStrategy/minimumHealthCapacity"),
    "negative maximumOverCapacity": (with_(CMD, upgradeStrategy={"minimumHealthCapacity": 1,
                                                                "maximumOverCapacity": -0.5}),
                                     "/upgradeStrategy/maximumOverCapacity"),
    "backoffFactor below 1": (with_(CMD, backoffFactor=0.5), "/backoffFactor"),
    "requirePorts not a boolean": (with_(CMD, requirePorts="yes"), "/requirePorts"),
    "docker without image": ({"id": "/app", "container": {"type": "DOCKER", "docker": {}}},
                             "/container/docker/image"),
    "docker with empty image": ({"id": "/app", "container": docker("")}, "/container/docker/image"),
    "unknown container type": ({"id": "/app", "container": {"type": "RKT", "docker": {"image": "x"}}},
                               "/container/type"),
    "unknown docker network": ({"id": "/app", "container": docker(network="OVERLAY")},
                               "/container/docker/network"),
    "unknown docker field": ({"id": "/app", "container": docker(restart="always")},
                             "/container/docker/restart"),
    "docker parameter without value": ({"id": "/app", "container": docker(parameters=[{"key": "ulimit"}])},
                                       "/container/docker/parameters(0)/value"),
    "container port out of range": (
        {"id": "/app", "container": {**docker(network="BRIDGE"), "portMappings": [{"containerPort": 70000}]}},
        "/container/portMappings(0)/containerPort"),
    "port-mapping protocol sctp": (
        {"id": "/app", "container": {**docker(network="BRIDGE"), "portMappings": [{"protocol": "sctp"}]}},
        "/container/portMappings(0)/protocol"),
    "volume mode rw": ({"id": "/app", "container": {**docker(), "volumes": [
        {"containerPath": "/data", "hostPath": "/srv/data", "mode": "rw"}]}}, "/container/volumes(0)/mode"),
    "env value a number": (with_(CMD, env={"PORT": 8080}), "/env/PORT"),
    "env secret with an extra field": (with_(CMD, env={"PW": {"secret": "db", "key": "x"}}), "/env/PW"),
    "label value not a string": (with_(CMD, labels={"HAPROXY_0_STICKY": True}), "/labels/HAPROXY_0_STICKY"),
    "labels a list": (with_(CMD, labels=["HAPROXY_GROUP=external"]), "/labels"),
    "unknown kill selection": (with_(CMD, killSelection="RANDOM"), "/killSelection"),
    "unknown unreachable strategy": (with_(CMD, unreachableStrategy="never"), "/unreachableStrategy"),
    "negative port definition": (with_(CMD, portDefinitions=[{"port": -1}]), "/portDefinitions(0)/port"),
    "port definition name with capitals": (with_(CMD, portDefinitions=[{"port": 0, "name": "Web"}]),
                                           "/portDefinitions(0)/name"),
    "readiness check over TCP": (with_(CMD, readinessChecks=[{"protocol": "TCP"}]),
                                 "/readinessChecks(0)/protocol"),
    "fetch without uri": (with_(CMD, fetch=[{"extract": False}]), "/fetch(0)/uri"),
    "bad dependency id": (with_(CMD, dependencies=["Bad_Dep"]), "/dependencies(0)"),
    "secret without source": (with_(CMD, secrets={"db": {}}), "/secrets/db/source"),
    "unknown network mode": (with_(CMD, networks=[{"mode": "overlay"}]), "/networks(0)/mode"),
    "an array instead of an app": ([CMD], "/"),
}

# Fields and shapes the 1.10 RAML adds: the 1.7 schema refuses them, we accept them.
RAML_ONLY = {
    "check (Mesos-native checks)": with_(CMD, check={"http": {"portIndex": 0, "path": "/ping"},
                                                     "intervalSeconds": 10}),
    "check running a command": with_(CMD, check={"exec": {"command": {"shell": "test -f /ready"}}}),
    "tty": with_(CMD, tty=True),
    "role": with_(CMD, role="slave_public"),
    "resourceLimits": with_(CMD, resourceLimits={"cpus": "unlimited", "mem": 1024}),
    "container.linuxInfo": {"id": "/app", "container": {
        **docker(), "linuxInfo": {"seccomp": {"unconfined": True}, "ipcInfo": {"mode": "PRIVATE", "shmSize": 64}}}},
    "secret volume": {"id": "/app", "secrets": {"tls": {"source": "certs/tls"}}, "container": {
        **docker(), "volumes": [{"containerPath": "tls.pem", "secret": "tls"}]}},
    "udp,tcp port definition": with_(CMD, portDefinitions=[{"port": 0, "protocol": "udp,tcp"}]),
    "port name starting with a digit": with_(CMD, portDefinitions=[{"port": 0, "name": "8080-http"}]),
    "null for an optional field (Marathon reads it as absent)": with_(CMD, user=None, args=None),
}

# Rules the schema lacks, which Marathon (RAML types plus its own validation) applies.
STRICTER = {
    "no cmd, args or container": ({"id": "/app"}, "/"),
    "imageless mesos container without cmd": ({"id": "/app", "container": {"type": "MESOS"}}, "/"),
    "zero cpus (RAML minimum 0.001)": (with_(CMD, cpus=0), "/cpus"),
    "empty label in an id segment": (with_(CMD, id="/shop..frontend"), "/id"),
    "id ending in a hyphen-dot": (with_(CMD, id="/a-.b"), "/id"),
    "root id": (with_(CMD, id="/"), "/id"),
    "id ending in a reserved word": (with_(CMD, id="/shop/tasks"), "/id"),
    "UNIQUE with a value": (with_(CMD, constraints=[["hostname", "UNIQUE", "x"]]), "/constraints(0)"),
    "CLUSTER without a value": (with_(CMD, constraints=[["rack_id", "CLUSTER"]]), "/constraints(0)"),
    "IS without a value": (with_(CMD, constraints=[["zone", "IS"]]), "/constraints(0)"),
    "MAX_PER not a number": (with_(CMD, constraints=[["rack_id", "MAX_PER", "two"]]), "/constraints(0)"),
    "GROUP_BY not a number": (with_(CMD, constraints=[["rack_id", "GROUP_BY", "many"]]), "/constraints(0)"),
    "LIKE with a broken regex": (with_(CMD, constraints=[["hostname", "LIKE", "web("]]), "/constraints(0)"),
    "duplicate constraints": (with_(CMD, constraints=[["hostname", "UNIQUE"]] * 2), "/constraints"),
    "half an upgrade strategy": (with_(CMD, upgradeStrategy={"minimumHealthCapacity": 0.5}),
                                 "/upgradeStrategy/maximumOverCapacity"),
    "appc containers (gone from the RAML)": (
        {"id": "/app", "container": {"type": "MESOS", "appc": {"image": "example.com/app"}}}, "/container/appc"),
    "health check on a port the app lacks": (with_(CMD, healthChecks=[{"protocol": "HTTP", "portIndex": 3}]),
                                             "/healthChecks(0)"),
    "COMMAND health check without a command": (with_(CMD, healthChecks=[{"protocol": "COMMAND"}]),
                                               "/healthChecks(0)/command"),
    "two Mesos health checks": (with_(CMD, healthChecks=[{"protocol": "MESOS_TCP"}, {"protocol": "MESOS_HTTP"}]),
                                "/"),
    "health-check command without value": (with_(CMD, healthChecks=[{"protocol": "COMMAND", "command": {}}]),
                                           "/healthChecks(0)/command/value"),
    "env secret not declared": (with_(CMD, env={"PW": {"secret": "db"}}), "/env/PW"),
    "docker container without docker": ({"id": "/app", "cmd": "x", "container": {"type": "DOCKER"}},
                                        "/container/docker"),
    "duplicate port names": (with_(CMD, portDefinitions=[{"port": 0, "name": "web"}, {"port": 0, "name": "web"}]),
                             "/portDefinitions"),
    "empty accepted roles": (with_(CMD, acceptedResourceRoles=[]), "/acceptedResourceRoles"),
    "readiness timeout not below interval": (
        with_(CMD, portDefinitions=[{"port": 0, "name": "http-api"}],
              readinessChecks=[{"intervalSeconds": 5, "timeoutSeconds": 5}]), "/readinessChecks(0)/timeoutSeconds"),
    "readiness on an unknown port name": (with_(CMD, readinessChecks=[{"portName": "admin"}]),
                                          "/readinessChecks(0)/portName"),
    "uris and fetch together": (with_(CMD, uris=["https://a/x.tgz"], fetch=[{"uri": "https://a/y"}]), "/uris"),
    "inactive after expunge": (with_(CMD, unreachableStrategy={"inactiveAfterSeconds": 600,
                                                               "expungeAfterSeconds": 60}), "/unreachableStrategy"),
    "tiny executor memory": (with_(CMD, executorResources={"mem": 16}), "/executorResources/mem"),
    "docker.network and networks": ({"id": "/app", "container": docker(network="BRIDGE"),
                                     "networks": [{"mode": "container/bridge"}]}, "/"),
    "container network without a name": (with_(CMD, networks=[{"mode": "container"}]), "/networks(0)/name"),
    "docker NONE networking": ({"id": "/app", "container": docker(network="NONE")}, "/container/docker/network"),
    "host volume without mode (required in RAML)": (
        {"id": "/app", "container": {**docker(), "volumes": [{"containerPath": "/d", "hostPath": "/srv"}]}},
        "/container/volumes(0)/mode"),
    "unknown network field": (with_(CMD, networks=[{"mode": "host", "mtu": 9000}]), "/networks(0)/mtu"),
}


# --- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("app", VALID.values(), ids=VALID.keys())
def test_realistic_apps_are_valid_for_both(app: dict) -> None:
    assert schema_accepts(app), [e.message for e in SCHEMA.iter_errors(app)]
    assert validate_app(app) == []


@pytest.mark.parametrize(("app", "path"), INVALID.values(), ids=INVALID.keys())
def test_broken_apps_are_invalid_for_both_and_we_name_the_field(app: Any, path: str) -> None:
    assert not schema_accepts(app)
    violations = validate_app(app)
    assert violations, "our validator accepted it"
    assert any(names(v.path, path) for v in violations), violations


@pytest.mark.parametrize("app", RAML_ONLY.values(), ids=RAML_ONLY.keys())
def test_raml_wins_schema_refuses_what_we_accept(app: dict) -> None:
    assert not schema_accepts(app)
    assert validate_app(app) == []


@pytest.mark.parametrize(("app", "path"), STRICTER.values(), ids=STRICTER.keys())
def test_marathon_rules_the_schema_lacks(app: dict, path: str) -> None:
    assert schema_accepts(app), [e.message for e in SCHEMA.iter_errors(app)]
    violations = validate_app(app)
    assert any(names(v.path, path) for v in violations), violations


def _raml_app_properties() -> set[str]:
    """The property names of `App` in types/app.raml (top-level properties, six-space indent)."""
    text = (API / "types" / "app.raml").read_text()
    block = text.split("\n  App:\n", 1)[1].split("\n  AppList:", 1)[0]
    return {m.group(1) for m in re.finditer(r"^ {6}([A-Za-z]+)\??:", block, re.MULTILINE)}


def test_our_fields_are_exactly_the_raml_app_fields() -> None:
    raml = _raml_app_properties()
    schema = set(SCHEMA.schema["properties"])
    assert APP_FIELDS == raml
    assert raml - schema == {"check", "tty", "role", "resourceLimits"}
    assert schema - raml == set()


def test_normalized_corpus_is_valid_for_both() -> None:
    for name, app in VALID.items():
        normalized = normalize_app(app)
        assert schema_accepts(normalized), (name, [e.message for e in SCHEMA.iter_errors(normalized)])
        assert validate_app(normalized) == [], name
        assert normalize_app(normalized) == normalized, name


# --- generated apps ------------------------------------------------------------------------------

segment = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
app_ids = st.lists(segment, min_size=1, max_size=3).filter(
    lambda s: s[-1] not in ("restart", "tasks", "versions")).map(lambda s: "/" + "/".join(s))
label_keys = st.sampled_from(["HAPROXY_GROUP", "HAPROXY_0_VHOST", "HAPROXY_0_MODE", "HAPROXY_0_PORT",
                              "HAPROXY_0_BACKEND_WEIGHT", "team", "tier"])
env_keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True)
constraints = st.sampled_from([
    ["hostname", "UNIQUE"], ["rack_id", "CLUSTER", "rack-1"], ["rack_id", "GROUP_BY"],
    ["rack_id", "GROUP_BY", "3"], ["hostname", "MAX_PER", "2"], ["hostname", "LIKE", "web[0-9]+"],
    ["hostname", "UNLIKE", "db.*"], ["zone", "IS", "a"]])
capacity = st.floats(0, 1, allow_nan=False)


@st.composite
def valid_apps(draw: st.DrawFn) -> dict:
    app: dict[str, Any] = {"id": draw(app_ids)}
    kind = draw(st.sampled_from(["cmd", "args", "bridge", "host-docker"]))
    ports = 1
    if kind == "cmd":
        app["cmd"] = draw(st.text(min_size=1, max_size=30))
    elif kind == "args":
        app["args"] = draw(st.lists(st.text(max_size=10), min_size=1, max_size=4))
    else:
        network = "BRIDGE" if kind == "bridge" else "HOST"
        app["container"] = {"type": "DOCKER", "docker": {"image": draw(st.sampled_from(
            ["nginx:1.25", "registry.local/team/api:2.0", "busybox"])), "network": network}}
        if kind == "bridge":
            ports = draw(st.integers(0, 3))
            app["container"]["portMappings"] = [
                {"containerPort": 8000 + i, "protocol": "tcp", "name": f"p{i}"} for i in range(ports)]
    if kind != "bridge" and draw(st.booleans()):
        ports = draw(st.integers(0, 3))
        app["portDefinitions"] = [{"port": 0, "name": f"p{i}"} for i in range(ports)]
    for key, strategy in {
        "instances": st.integers(0, 20), "cpus": st.floats(0.01, 8), "mem": st.floats(16, 8192),
        "disk": st.floats(0, 1e5), "backoffSeconds": st.integers(0, 300), "backoffFactor": st.floats(1, 10),
        "labels": st.dictionaries(label_keys, st.text(max_size=20), max_size=4),
        "env": st.dictionaries(env_keys, st.text(max_size=20), max_size=4),
        "constraints": st.lists(constraints, max_size=3, unique_by=json.dumps),
        "dependencies": st.lists(app_ids, max_size=2, unique=True),
        "upgradeStrategy": st.fixed_dictionaries({"minimumHealthCapacity": capacity,
                                                  "maximumOverCapacity": capacity}),
        "killSelection": st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST"]),
    }.items():
        if draw(st.booleans()):
            app[key] = draw(strategy)
    if ports and draw(st.booleans()):
        app["healthChecks"] = [{"protocol": draw(st.sampled_from(["HTTP", "HTTPS", "TCP"])),
                                "portIndex": draw(st.integers(0, ports - 1)),
                                "intervalSeconds": draw(st.integers(1, 60))}]
    return app


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_apps())
def test_generated_apps_are_valid_for_both_and_normalize_is_idempotent(app: dict) -> None:
    assert schema_accepts(app), [e.message for e in SCHEMA.iter_errors(app)]
    assert validate_app(app) == []
    normalized = normalize_app(app)
    assert normalize_app(normalized) == normalized
    assert validate_app(normalized) == []
    assert schema_accepts(normalized), [e.message for e in SCHEMA.iter_errors(normalized)]
