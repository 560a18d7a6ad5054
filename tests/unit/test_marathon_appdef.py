"""Unit tests of the Marathon app-definition rules: ids, defaults, error bodies, cross-field checks."""

from __future__ import annotations

import json

import pytest

from wharf.contracts.marathon_app import (
    InvalidAppId,
    Violation,
    error_body,
    normalize_app,
    parse_app_id,
    validate_app,
)

pytestmark = pytest.mark.unit


def paths(app: dict) -> list[str]:
    return [v.path for v in validate_app(app)]


# --- ids -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "base", "canonical"), [
    ("/shop/frontend", "/", "/shop/frontend"),
    ("frontend", "/", "/frontend"),
    ("frontend", "/shop", "/shop/frontend"),
    ("../catalog", "/shop/web", "/shop/catalog"),
    ("/shop/../db", "/", "/db"),
    ("//shop//frontend/", "/", "/shop/frontend"),
    ("/a.b-c/x1.y2", "/", "/a.b-c/x1.y2"),
    ("/0/9", "/", "/0/9"),
])
def test_parse_app_id_canonicalizes(raw: str, base: str, canonical: str) -> None:
    assert parse_app_id(raw, base) == canonical


@pytest.mark.parametrize(("raw", "message"), [
    ("", "must not be empty"),
    ("/Shop", "must fully match regular expression"),
    ("/shop_web", "must fully match regular expression"),
    ("/-shop", "must fully match regular expression"),
    ("/shop-", "must fully match regular expression"),
    ("/a..b", "must fully match regular expression"),
    ("/a.-b", "must fully match regular expression"),
    ("/./a", "must fully match regular expression"),
    ("/", "Path must contain at least one path element"),
    ("/a/..", "Path must contain at least one path element"),
    ("/shop/versions", "reserved keywords"),
    ("restart", "reserved keywords"),
])
def test_parse_app_id_refuses(raw: str, message: str) -> None:
    with pytest.raises(InvalidAppId, match=message):
        parse_app_id(raw)


def test_reserved_words_are_fine_before_the_last_segment() -> None:
    assert parse_app_id("/tasks/worker") == "/tasks/worker"


def test_relative_dependencies_resolve_against_the_app_group() -> None:
    app = normalize_app({"id": "/shop/web", "cmd": "x", "dependencies": ["catalog", "/db", "../infra/lb"]})
    assert app["dependencies"] == ["/shop/catalog", "/db", "/infra/lb"]


# --- error bodies --------------------------------------------------------------------------------

def test_error_body_has_marathons_shape() -> None:
    body = error_body([Violation("/upgradeStrategy/minimumHealthCapacity", "is greater than 1")])
    assert body == {"message": "Object is not valid",
                    "details": [{"path": "/upgradeStrategy/minimumHealthCapacity",
                                 "errors": ["is greater than 1"]}]}
    json.dumps(body)  # serialisable as is


def test_error_body_groups_errors_by_path_in_order_without_repeats() -> None:
    body = error_body([Violation("/", "a"), Violation("/cpus", "b"), Violation("/", "c"), Violation("/", "a")])
    assert body["details"] == [{"path": "/", "errors": ["a", "c"]}, {"path": "/cpus", "errors": ["b"]}]


def test_error_body_for_a_real_validation() -> None:
    app = {"id": "/app", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2, "maximumOverCapacity": 1}}
    assert error_body(validate_app(app)) == {
        "message": "Object is not valid",
        "details": [{"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]}


def test_unreadable_apps_are_not_judged_further() -> None:
    # a type error stops validation, as Marathon's reader does, so no cmd/args complaint follows
    assert validate_app({"id": "/app", "cpus": "lots"}) == [Violation("/cpus", "must be a number")]


def test_every_violation_is_reported() -> None:
    assert paths({"id": "/Bad", "cmd": "x", "cpus": -1, "mem": -1, "extra": 1}) == ["/cpus", "/mem", "/extra"]
    assert paths({"id": "/Bad", "cmd": "x"}) == ["/id"]


# --- cross-field rules ---------------------------------------------------------------------------

@pytest.mark.parametrize(("app", "valid"), [
    ({"id": "/a", "cmd": "x"}, True),
    ({"id": "/a", "args": ["x"]}, True),
    ({"id": "/a", "container": {"docker": {"image": "busybox"}}}, True),
    ({"id": "/a", "args": ["x"], "container": {"docker": {"image": "busybox"}}}, True),
    ({"id": "/a", "cmd": "x", "args": []}, True),  # empty args count as absent
    ({"id": "/a"}, False),
    ({"id": "/a", "args": []}, False),
    ({"id": "/a", "container": {"type": "MESOS", "volumes": []}}, False),
])
def test_cmd_args_or_container(app: dict, valid: bool) -> None:
    assert ("/" not in paths(app)) is valid


@pytest.mark.parametrize(("constraint", "valid"), [
    (["hostname", "UNIQUE"], True),
    (["hostname", "UNIQUE", ""], False),
    (["rack", "CLUSTER", "r1"], True),
    (["rack", "CLUSTER", ""], False),
    (["rack", "GROUP_BY"], True),
    (["rack", "GROUP_BY", "2"], True),
    (["rack", "MAX_PER", "2"], True),
    (["rack", "MAX_PER"], False),
    (["host", "LIKE", "a.*"], True),
    (["host", "UNLIKE"], False),
    (["zone", "IS", "a"], True),
    (["", "UNIQUE"], False),
    (["hostname", "unique"], False),
])
def test_constraint_operators(constraint: list[str], valid: bool) -> None:
    assert (paths({"id": "/a", "cmd": "x", "constraints": [constraint]}) == []) is valid


@pytest.mark.parametrize(("protocol", "extra"), [
    ("HTTP", {"path": "/health"}), ("HTTPS", {}), ("TCP", {}), ("COMMAND", {"command": {"value": "true"}}),
    ("MESOS_HTTP", {"path": "/"}), ("MESOS_HTTPS", {}), ("MESOS_TCP", {}),
])
def test_every_health_check_protocol_is_accepted(protocol: str, extra: dict) -> None:
    assert validate_app({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": protocol, **extra}]}) == []


def test_health_check_port_index_must_exist() -> None:
    app = {"id": "/a", "cmd": "x", "portDefinitions": [{"port": 0}, {"port": 0}],
           "healthChecks": [{"protocol": "HTTP", "portIndex": 1}, {"protocol": "TCP", "portIndex": 2}]}
    assert paths(app) == ["/healthChecks(1)"]
    # without an index, an app with exactly one port is fine; two ports need an index or a port
    assert paths({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTP"}]}) == []
    assert paths({**app, "healthChecks": [{"protocol": "HTTP"}]}) == ["/healthChecks(0)"]
    assert paths({**app, "healthChecks": [{"protocol": "HTTP", "port": 8080}]}) == []


def test_health_checks_count_container_port_mappings_in_bridge_mode() -> None:
    app = {"id": "/a", "container": {"docker": {"image": "x", "network": "BRIDGE"},
                                     "portMappings": [{"containerPort": 80}, {"containerPort": 81}]},
           "healthChecks": [{"protocol": "HTTP", "portIndex": 1}]}
    assert validate_app(app) == []


def test_ipv6_health_checks_need_docker_and_a_mesos_protocol() -> None:
    check = {"protocol": "MESOS_HTTP", "ipProtocol": "IPv6"}
    assert paths({"id": "/a", "cmd": "x", "healthChecks": [check]}) == ["/healthChecks(0)"]
    assert paths({"id": "/a", "container": {"docker": {"image": "x"}}, "healthChecks": [check]}) == []


def test_upgrade_strategy_bounds() -> None:
    def strategy(minimum: float, maximum: float) -> list[str]:
        return paths({"id": "/a", "cmd": "x",
                      "upgradeStrategy": {"minimumHealthCapacity": minimum, "maximumOverCapacity": maximum}})
    assert strategy(0, 0) == strategy(1, 1) == strategy(0.5, 0.25) == []
    assert strategy(1.01, 0) == ["/upgradeStrategy/minimumHealthCapacity"]
    assert strategy(0, 1.5) == ["/upgradeStrategy/maximumOverCapacity"]


def test_env_values_are_strings_or_declared_secrets() -> None:
    app = {"id": "/a", "cmd": "x", "env": {"A": "1", "B": {"secret": "s"}}, "secrets": {"s": {"source": "v/s"}}}
    assert validate_app(app) == []
    assert paths({**app, "env": {"A": ["1"]}}) == ["/env/A"]
    assert paths({**app, "env": {"B": {"secret": "other"}}}) == ["/env/B"]


def test_labels_map_strings_to_strings() -> None:
    assert validate_app({"id": "/a", "cmd": "x", "labels": {"HAPROXY_GROUP": "external"}}) == []
    assert paths({"id": "/a", "cmd": "x", "labels": {"HAPROXY_0_PORT": 80}}) == ["/labels/HAPROXY_0_PORT"]


def test_single_instance_label_limits_instances() -> None:
    app = {"id": "/a", "cmd": "x", "labels": {"MARATHON_SINGLE_INSTANCE_APP": "true"}, "instances": 2}
    assert paths(app) == ["/"]
    assert paths({**app, "instances": 1}) == []


def test_gpus_need_the_mesos_containerizer() -> None:
    assert paths({"id": "/a", "container": {"docker": {"image": "x"}}, "gpus": 1}) == ["/"]
    assert paths({"id": "/a", "container": {"type": "MESOS", "docker": {"image": "x"}}, "gpus": 1}) == []


def test_check_needs_exactly_one_kind() -> None:
    assert paths({"id": "/a", "cmd": "x", "check": {"intervalSeconds": 5}}) == ["/check"]
    assert paths({"id": "/a", "cmd": "x", "check": {"tcp": {}, "http": {}}}) == ["/check"]
    assert paths({"id": "/a", "cmd": "x", "check": {"exec": {"command": {"argv": ["true"]}}}}) == []
    assert paths({"id": "/a", "cmd": "x", "check": {"exec": {"command": {}}}}) == ["/check/exec/command"]


def test_port_mapping_network_names_must_be_declared_networks() -> None:
    app = {"id": "/a", "container": {"type": "MESOS", "docker": {"image": "x"},
                                     "portMappings": [{"containerPort": 80, "networkNames": ["blue"]}]},
           "networks": [{"mode": "container", "name": "red"}]}
    assert paths(app) == ["/container/portMappings(0)/networkNames"]


# --- normalize_app -------------------------------------------------------------------------------

def test_normalize_fills_marathons_defaults() -> None:
    assert normalize_app({"id": "sleeper", "cmd": "sleep 60"}) == {
        "id": "/sleeper", "cmd": "sleep 60",
        "instances": 1, "cpus": 1, "mem": 128, "disk": 0, "gpus": 0, "executor": "",
        "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300,
        "requirePorts": False, "killSelection": "YOUNGEST_FIRST",
        "labels": {}, "env": {}, "secrets": {}, "constraints": [], "healthChecks": [],
        "readinessChecks": [], "dependencies": [], "fetch": [],
        "networks": [{"mode": "host"}],
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "default"}],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    }


def test_normalize_keeps_what_is_given() -> None:
    app = normalize_app({"id": "/a", "cmd": "x", "instances": 0, "cpus": 0.25, "labels": {"k": "v"},
                         "unreachableStrategy": "disabled", "killSelection": "OLDEST_FIRST"})
    assert (app["instances"], app["cpus"], app["labels"]) == (0, 0.25, {"k": "v"})
    assert (app["unreachableStrategy"], app["killSelection"]) == ("disabled", "OLDEST_FIRST")


def test_normalize_translates_a_legacy_bridge_docker_app() -> None:
    app = normalize_app({
        "id": "/web", "container": {"type": "DOCKER", "docker": {
            "image": "nginx", "network": "BRIDGE", "portMappings": [{"containerPort": 80, "name": "http"}]}},
        "portDefinitions": [{"port": 0}], "requirePorts": True,
        "healthChecks": [{"protocol": "HTTP", "path": "/"}]})
    assert app["networks"] == [{"mode": "container/bridge"}]
    assert app["container"] == {
        "type": "DOCKER", "volumes": [],
        "docker": {"image": "nginx", "forcePullImage": False, "privileged": False, "parameters": []},
        "portMappings": [{"containerPort": 80, "name": "http", "hostPort": 0, "servicePort": 0,
                          "protocol": "tcp", "labels": {}}]}
    assert "portDefinitions" not in app and app["requirePorts"] is False
    assert app["healthChecks"] == [{
        "protocol": "HTTP", "path": "/", "portIndex": 0, "ignoreHttp1xx": False, "ipProtocol": "IPv4",
        "gracePeriodSeconds": 300, "intervalSeconds": 60, "maxConsecutiveFailures": 3,
        "timeoutSeconds": 20, "delaySeconds": 15}]


def test_normalize_gives_bridge_apps_a_default_port_mapping() -> None:
    app = normalize_app({"id": "/a", "container": {"docker": {"image": "x"}},
                         "networks": [{"mode": "container/bridge"}]})
    assert app["container"]["portMappings"] == [
        {"containerPort": 0, "name": "default", "hostPort": 0, "servicePort": 0, "protocol": "tcp", "labels": {}}]


def test_normalize_drops_port_mappings_under_host_networking() -> None:
    app = normalize_app({"id": "/a", "container": {"docker": {"image": "x", "network": "HOST"},
                                                   "portMappings": [{"containerPort": 80}]}})
    assert "portMappings" not in app["container"]
    assert app["portDefinitions"] == [{"port": 0, "protocol": "tcp", "name": "default"}]


def test_normalize_translates_ports_and_uris() -> None:
    app = normalize_app({"id": "/a", "cmd": "x", "ports": [0, 8080],
                         "uris": ["https://h/app.tar.gz", "https://h/config.json"]})
    assert "ports" not in app and "uris" not in app
    assert app["portDefinitions"] == [{"port": 0, "protocol": "tcp"}, {"port": 8080, "protocol": "tcp"}]
    assert app["fetch"] == [
        {"uri": "https://h/app.tar.gz", "extract": True, "executable": False, "cache": False},
        {"uri": "https://h/config.json", "extract": False, "executable": False, "cache": False}]


def test_normalize_fills_readiness_and_check_defaults() -> None:
    app = normalize_app({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 0, "name": "http-api"}],
                         "readinessChecks": [{}], "check": {"http": {"portIndex": 0}}})
    assert app["readinessChecks"] == [{
        "name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
        "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
        "preserveLastResponse": False}]
    assert app["check"] == {"http": {"scheme": "HTTP", "portIndex": 0}, "intervalSeconds": 60,
                            "timeoutSeconds": 20, "delaySeconds": 15}


def test_normalize_resident_apps() -> None:
    app = normalize_app({"id": "/db", "cmd": "x", "container": {"type": "MESOS", "volumes": [
        {"containerPath": "data", "mode": "RW", "persistent": {"size": 100}}]}})
    assert app["upgradeStrategy"] == {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}
    assert app["unreachableStrategy"] == "disabled"
    assert app["residency"] == {"relaunchEscalationTimeoutSeconds": 3600, "taskLostBehavior": "WAIT_FOREVER"}


def test_normalize_treats_null_as_absent() -> None:
    assert normalize_app({"id": "/a", "cmd": "x", "user": None, "args": None}) == \
        normalize_app({"id": "/a", "cmd": "x"})


def test_normalize_does_not_touch_its_input_and_is_idempotent() -> None:
    raw = {"id": "web", "container": {"docker": {"image": "x", "network": "BRIDGE"}}, "labels": {"a": "b"}}
    before = json.dumps(raw, sort_keys=True)
    once = normalize_app(raw)
    assert json.dumps(raw, sort_keys=True) == before
    assert normalize_app(once) == once
    assert validate_app(once) == []
