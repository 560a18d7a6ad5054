"""Which registrations a container gets: registrator's SERVICE_* rules and the Marathon contract."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from registrator.model import DIGEST_KEY, DockerContainer, Options, Registered, health_rows, listing
from registrator.reconcile import reconcile
from registrator.services import desired, image_name, split_tags
from tests.upstream import upstream
from wharf.contracts.marathon_lb import marathon_service_ports as service_ports
from wharf.contracts.marathon_lb import service_name

pytestmark = pytest.mark.unit

OPTS = Options(hostname="node1", host_ip="10.0.0.5", owner="reg-a")


def inspect(env: dict[str, str] | None = None, labels: dict[str, str] | None = None, *,
            name: str = "web.1", image: str = "acme/web:1.2", ports: dict[str, Any] | None = None,
            exposed: list[str] | None = None, network: str = "default", running: bool = True,
            ip: str = "") -> dict[str, Any]:
    """A `docker inspect` dict as the engine returns it, with only the fields that matter varied."""
    return {
        "Id": "c0ffee" * 10 + "abcd",
        "Name": f"/{name}",
        "Image": "sha256:1234",
        "State": {"Running": running, "Paused": False, "ExitCode": 0 if running else 1},
        "Config": {"Image": image, "Env": [f"{k}={v}" for k, v in (env or {}).items()] + ["PATH=/bin"],
                   "Labels": labels or {}, "ExposedPorts": {p: {} for p in exposed or []}},
        "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"IPAddress": ip, "Ports": ports if ports is not None else
                            {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "31001"}]}, "Networks": {}},
    }


def one(data: dict[str, Any], options: Options = OPTS, **kw: Any) -> dict[str, Any]:
    (reg,) = desired(DockerContainer.from_inspect(data), options, **kw)
    body = reg.body()
    body["Meta"].pop(DIGEST_KEY)
    return body


def test_registrators_derived_consul_payloads() -> None:
    """Each upstream case: the same ID, name, tags, address, port, user Meta and check."""
    cases = json.loads(upstream("registrator", "consul_register_payloads_derived.json").read_text())["cases"]
    for case in cases:
        body = one(inspect(case["env"]))
        expected = case["register_body"]
        for key in ("ID", "Name", "Tags", "Port", "Address"):
            assert body[key] == expected[key], (case["env"], key)
        meta = {k: v for k, v in body["Meta"].items() if k not in ("wharf_owner", "container_id")}
        assert meta == expected["Meta"]
        # the ID Consul gives a service's only check, written out so a later registration can drop it
        assert body["Check"].pop("CheckID") == f"service:{expected['ID']}"
        if "Args" in expected["Check"]:
            # registrator's `Script` ran in a shell; Consul's `Args` does not, so the shell is explicit
            assert body["Check"]["Args"] == ["/bin/sh", "-c", *expected["Check"]["Args"]]
            assert body["Check"]["Interval"] == expected["Check"]["Interval"]
        else:
            assert body["Check"] == expected["Check"]


def test_registrators_documented_examples() -> None:
    examples = json.loads(upstream("registrator", "docs_service_examples.json").read_text())["examples"]
    for example in examples:
        argv = example["docker_run"].split()
        env, labels, ports, name = {}, {}, {}, ""
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag == "-e":
                env.update([value.split("=", 1)])
            elif flag == "-l":
                labels.update([value.split("=", 1)])
            elif flag == "-p":
                host, container = value.split(":")
                ports[f"{container}/tcp"] = [{"HostIp": "0.0.0.0", "HostPort": host}]
            elif flag == "--name":
                name = value
        regs = desired(DockerContainer.from_inspect(inspect(env, labels, name=name, image=argv[-1], ports=ports)),
                       Options(hostname="hostname", host_ip="192.168.1.102", owner="o"))
        got = sorted(({"ID": r.id, "Name": r.name, "Port": r.port, "IP": r.address, "Tags": list(r.tags),
                       "Attrs": {k: v for k, v in r.meta if k not in ("wharf_owner", "container_id")}}
                      for r in regs), key=lambda s: s["ID"])
        assert got == sorted(example["services"], key=lambda s: s["ID"]), example["title"]


def test_labels_beat_env_and_port_settings_beat_general_ones() -> None:
    body = one(inspect({"SERVICE_NAME": "from-env", "SERVICE_TAGS": "a"},
                       {"SERVICE_NAME": "from-label", "SERVICE_8080_TAGS": "b,c\\,d", "SERVICE_9999_TAGS": "x"}))
    assert body["Name"] == "from-label"
    assert body["Tags"] == ["b", "c,d"]


def test_ignore_explicit_and_the_tags_option() -> None:
    assert desired(DockerContainer.from_inspect(inspect({"SERVICE_IGNORE": "1"})), OPTS) == []
    assert desired(DockerContainer.from_inspect(inspect({"SERVICE_8080_IGNORE": "yes"})), OPTS) == []
    explicit = Options(hostname="h", host_ip="10.0.0.5", owner="o", explicit=True, tags=("dc1",))
    assert desired(DockerContainer.from_inspect(inspect()), explicit) == []
    assert one(inspect({"SERVICE_NAME": "api"}), explicit)["Tags"] == ["dc1"]


def test_udp_ports_get_a_suffix_and_a_tag_and_several_ports_a_name_suffix() -> None:
    ports = {"53/udp": [{"HostIp": "", "HostPort": "5353"}], "80/tcp": [{"HostIp": "", "HostPort": "8000"},
                                                                        {"HostIp": "::", "HostPort": "8000"}]}
    regs = desired(DockerContainer.from_inspect(inspect({"SERVICE_80_NAME": "http"}, ports=ports, image="dns")), OPTS)
    assert [(r.id, r.name, r.tags, r.port) for r in regs] == [
        ("node1:web.1:53:udp", "dns-53", ("udp",), 5353), ("node1:web.1:80", "http", (), 8000)]


def test_addresses_ip_flag_specific_binding_host_network_and_internal() -> None:
    bound = {"8080/tcp": [{"HostIp": "127.0.0.9", "HostPort": "31001"}]}
    assert one(inspect(ports=bound))["Address"] == "127.0.0.9"
    flagged = Options(hostname="h", host_ip="10.0.0.5", owner="o", ip="192.0.2.1")
    assert one(inspect(ports=bound), flagged)["Address"] == "192.0.2.1"
    host_net = one(inspect(ports={}, exposed=["7000/tcp"], network="host"))
    assert (host_net["Address"], host_net["Port"], host_net["ID"]) == ("10.0.0.5", 7000, "node1:web.1:7000")
    internal = Options(hostname="h", host_ip="10.0.0.5", owner="o", internal=True)
    body = one(inspect({"SERVICE_CHECK_TCP": "1"}, ip="172.17.0.4"), internal)
    assert (body["Address"], body["Port"], body["Check"]["TCP"]) == ("172.17.0.4", 8080, "172.17.0.4:8080")
    assert desired(DockerContainer.from_inspect(inspect(ports={})), OPTS) == []  # nothing published


def test_check_precedence_and_options() -> None:
    body = one(inspect({"SERVICE_CHECK_TCP": "1", "SERVICE_CHECK_HTTPS": "/h", "SERVICE_CHECK_TIMEOUT": "1s",
                        "SERVICE_CHECK_INITIAL_STATUS": "critical"}))
    check = body["Check"]
    assert check.pop("CheckID") == f"service:{body['ID']}"
    assert check == {"HTTP": "https://10.0.0.5:31001/h", "Interval": "10s", "Timeout": "1s", "Status": "critical"}
    cmd = one(inspect({"SERVICE_CHECK_CMD": "test -f /ok", "SERVICE_CHECK_TTL": "5s"}))["Check"]
    assert cmd["DockerContainerID"].startswith("c0ffee") and cmd["Args"] == ["/bin/sh", "-c", "test -f /ok"]
    assert "Check" not in one(inspect())


def test_contract_keys_cannot_be_overridden_and_meta_keeps_consuls_limits() -> None:
    env = {"SERVICE_WHARF_OWNER": "someone-else", "SERVICE_CONTAINER_ID": "x", "SERVICE_BAD.KEY": "v",
           "SERVICE_LONG": "v" * 600, **{f"SERVICE_K{i:02d}": "v" for i in range(80)}}
    meta = one(inspect(env))["Meta"]
    assert meta["wharf_owner"] == "reg-a" and meta["container_id"].startswith("c0ffee")
    assert "bad.key" not in meta and "long" not in meta
    assert len(meta) <= 64


def marathon_task(index_ports: list[int], labels: dict[str, str], **env: str) -> dict[str, Any]:
    task_env = {"MARATHON_APP_ID": "/shop/web", "MARATHON_APP_VERSION": "2026-01-01T00:00:00.000Z",
                "MESOS_TASK_ID": "shop_web.instance-1234._app.1", "HOST": "127.0.0.3", **env}
    task_env.update({f"PORT{i}": str(p) for i, p in enumerate(index_ports)})
    return inspect(task_env, labels, name="mesos-abc", image="wharf/busybox:latest", ports={}, network="host")


def test_marathon_task_gets_the_contracts_name_address_and_meta() -> None:
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_1_PORT": "10011",
              "SERVICE_32001_NAME": "shop-admin", "wharf.owner": "deploy"}
    regs = desired(DockerContainer.from_inspect(marathon_task([32000, 32001], labels)), OPTS,
                   app={"portDefinitions": [{"port": 10010}]})
    assert [(r.id, r.name, r.address, r.port) for r in regs] == [
        ("node1:mesos-abc:32000", "shop-web", "127.0.0.3", 32000),
        ("node1:mesos-abc:32001", "shop-admin", "127.0.0.3", 32001)]
    first, second = (dict(r.meta) for r in regs)
    assert first == {"wharf_owner": "reg-a", "container_id": "c0ffee" * 10 + "abcd", "marathon_app_id": "/shop/web",
                     "mesos_task_id": "shop_web.instance-1234._app.1", "port_index": "0", "service_port": "10010",
                     "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_1_PORT": "10011"}
    assert (second["port_index"], second["service_port"]) == ("1", "10011")  # from the label: Marathon had none
    flagged = Options(hostname="node1", host_ip="10.0.0.5", owner="reg-a", ip="192.0.2.7")
    task = DockerContainer.from_inspect(marathon_task([32000], {}))
    assert {r.address for r in desired(task, flagged)} == {"192.0.2.7"}


def test_with_a_node_address_only_that_nodes_containers_are_registered() -> None:
    node2 = Options(hostname="node2", host_ip="127.0.0.3", owner="reg-2", node_address="127.0.0.3")
    node3 = replace(node2, hostname="node3", owner="reg-3", node_address="127.0.0.4")
    task = DockerContainer.from_inspect(marathon_task([32000], {}))  # HOST=127.0.0.3
    assert [(r.id, r.address) for r in desired(task, node2)] == [("node2:mesos-abc:32000", "127.0.0.3")]
    assert desired(task, node3) == []
    published = DockerContainer.from_inspect(inspect(ports={"80/tcp": [{"HostIp": "127.0.0.4", "HostPort": "8080"}]}))
    everywhere = DockerContainer.from_inspect(inspect())  # published on 0.0.0.0: no node's in particular
    assert (desired(published, node2), len(desired(published, node3))) == ([], 1)
    assert desired(everywhere, node2) == desired(everywhere, node3) == []
    assert len(desired(everywhere, OPTS)) == 1  # no node address: every container, as before


def test_a_stopped_container_has_no_registrations_and_names_are_derived_like_registrator() -> None:
    assert desired(DockerContainer.from_inspect(inspect(running=False)), OPTS) == []
    assert image_name("registry:5000/acme/web:1.2") == "web"
    assert image_name("acme/web@sha256:abc") == "web"
    assert service_name("/shop/web") == "shop-web"
    assert split_tags(" a, ,b ") == ["a", "b"]


def test_digest_changes_with_what_consul_would_hold() -> None:
    a = desired(DockerContainer.from_inspect(inspect({"SERVICE_TAGS": "a"})), OPTS)[0]
    b = desired(DockerContainer.from_inspect(inspect({"SERVICE_TAGS": "b"})), OPTS)[0]
    assert a.digest != b.digest and a.digest == desired(DockerContainer.from_inspect(inspect({"SERVICE_TAGS": "a"})),
                                                        OPTS)[0].digest
    held = listing({a.id: a.body()}, {f"_service_maintenance:{a.id}": {"Notes": "container stopping"}})
    assert held[a.id] == Registered(a.id, "reg-a", a.container_id, a.digest, maintenance=True)


def test_maintenance_someone_else_set_is_not_the_registrators_to_lift() -> None:
    """`wharf apps scale` drains a task before killing it (or an operator runs `consul maint`): the
    registrator, which wants the running container served, leaves that maintenance alone."""
    a = desired(DockerContainer.from_inspect(inspect()), OPTS)[0]
    for reason in ("wharf: draining before kill", "", None):
        held = listing({a.id: a.body()}, {f"_service_maintenance:{a.id}": {"Notes": reason}})
        assert not held[a.id].maintenance
        assert reconcile([a], held, "reg-a").empty
    ours = listing({a.id: a.body()}, {f"_service_maintenance:{a.id}": {"Notes": "container stopping"}})
    assert reconcile([a], ours, "reg-a").undrain == (a.id,)  # its own drain, the container still running


def test_health_rows_show_drains_and_the_worst_check_of_wharf_services_only() -> None:
    services = {"a": {"Service": "web", "Address": "127.0.0.1", "Port": 1, "Meta": {"wharf_owner": "r1"}},
                "b": {"Service": "web", "Address": "127.0.0.1", "Port": 2, "Meta": {"wharf_owner": "r2"}},
                "c": {"Service": "db", "Address": "127.0.0.1", "Port": 3, "Meta": {"wharf_owner": "r1"}},
                "x": {"Service": "other", "Address": "127.0.0.1", "Port": 4, "Meta": {}}}
    checks = {"service:a": {"CheckID": "service:a", "ServiceID": "a", "Status": "passing"},
              "a2": {"CheckID": "a2", "ServiceID": "a", "Status": "warning"},
              "_service_maintenance:b": {"CheckID": "_service_maintenance:b", "ServiceID": "b", "Status": "critical"}}
    assert [(r["id"], r["health"]) for r in health_rows(services, checks)] == [
        ("a", "warning"), ("b", "maintenance"), ("c", "passing")]
    assert [r["id"] for r in health_rows(services, checks, owner="r2")] == ["b"]


def test_service_ports_of_marathon_app_definitions() -> None:
    assert service_ports({"portDefinitions": [{"port": 10001}, {"port": 0}, {"port": 10003}]}) == {0: 10001, 2: 10003}
    assert service_ports({"container": {"portMappings": [{"containerPort": 80, "servicePort": 10080}]}}) == {0: 10080}
    assert service_ports({"container": {"docker": {"portMappings": [{"servicePort": 10090}]}}}) == {0: 10090}
    assert service_ports({}) == {}


# --- Marathon health checks: ready before routed --------------------------------------------------

def health_app(*checks: dict[str, Any]) -> dict[str, Any]:
    return {"id": "/shop/web", "portDefinitions": [{"port": 10010}, {"port": 10011}], "healthChecks": list(checks)}


def checks_of(app: dict[str, Any], healthy: bool = False, **env: str) -> list[dict[str, Any] | list[dict[str, Any]]]:
    """Each registration's check(s) as the agent gets them (`Check`, `Checks`, or None), IDs left out
    (`check_ids_of` has them)."""
    regs = desired(DockerContainer.from_inspect(marathon_task([32000, 32001], {}, **env)), OPTS, app=app,
                   healthy=healthy)
    out: list[dict[str, Any] | list[dict[str, Any]]] = []
    for reg in regs:
        body = reg.body()
        checks = [{k: v for k, v in c.items() if k != "CheckID"} for c in ([body["Check"]] if "Check" in body
                                                                          else body.get("Checks", []))]
        out.append(checks[0] if "Check" in body else checks or None)
    return out


def check_ids_of(app: dict[str, Any], healthy: bool = False) -> list[list[str]]:
    regs = desired(DockerContainer.from_inspect(marathon_task([32000, 32001], {})), OPTS, app=app, healthy=healthy)
    return [[dict(c)["CheckID"] for c in r.checks] for r in regs]


def test_a_task_marathon_reports_healthy_is_registered_passing_under_new_check_ids() -> None:
    """Consul keeps a check's status when it is registered again under the same ID, and runs a new
    check first up to an interval later: the healthy generation has IDs of its own, and passes."""
    app = health_app({"protocol": "TCP"}, {"protocol": "HTTP", "path": "/ready", "portIndex": 1})
    assert check_ids_of(app) == [["service:node1:mesos-abc:32000:1", "service:node1:mesos-abc:32000:2"],
                                 ["service:node1:mesos-abc:32001:1", "service:node1:mesos-abc:32001:2"]]
    assert check_ids_of(app, healthy=True)[0] == ["service:node1:mesos-abc:32000:1:healthy",
                                                  "service:node1:mesos-abc:32000:2:healthy"]
    starting, healthy = checks_of(app)[0], checks_of(app, healthy=True)[0]
    assert isinstance(starting, list) and isinstance(healthy, list)
    assert {c["Status"] for c in starting} == {"critical"} and {c["Status"] for c in healthy} == {"passing"}
    assert [{**c, "Status": "x"} for c in starting] == [{**c, "Status": "x"} for c in healthy]
    one_check = health_app({"protocol": "TCP"})
    assert check_ids_of(one_check, healthy=True)[0] == ["service:node1:mesos-abc:32000:healthy"]
    # registrator's own SERVICE_CHECK_* win, and Marathon's health does not touch them
    own = desired(DockerContainer.from_inspect(marathon_task([32000], {}, SERVICE_CHECK_TCP="1")), OPTS,
                  app=one_check, healthy=True)
    assert [dict(c)["CheckID"] for c in own[0].checks] == ["service:node1:mesos-abc:32000"]
    assert "Status" not in dict(own[0].checks[0])


def test_marathon_health_checks_become_consul_checks_that_start_critical() -> None:
    app = health_app({"protocol": "HTTP", "path": "/ready", "portIndex": 1, "intervalSeconds": 2, "timeoutSeconds": 1,
                      "gracePeriodSeconds": 30, "maxConsecutiveFailures": 3})
    first, second = checks_of(app)
    want = {"Name": "Marathon health check 0 (HTTP)", "HTTP": "http://127.0.0.3:32001/ready", "Interval": "2s",
            "Timeout": "1s", "Status": "critical"}
    assert first == second == want  # the task's readiness, on each of its ports' services


def test_every_marathon_protocol_marathon_defaults_and_what_is_left_out() -> None:
    app = health_app({"protocol": "MESOS_TCP"}, {"protocol": "COMMAND", "command": {"value": "test -f /ok"}},
                     {"protocol": "MESOS_HTTPS", "port": 8443, "path": "ready"},
                     {"protocol": "HTTP", "portIndex": 5},  # the task has no port 5
                     {"protocol": "COMMAND"}, {"protocol": "SMOKE_SIGNALS"}, "not a check")
    checks = checks_of(app)[0]
    assert isinstance(checks, list)
    assert [{k: v for k, v in c.items() if k not in ("Name", "Status")} for c in checks] == [
        {"TCP": "127.0.0.3:32000", "Interval": "60s", "Timeout": "20s"},
        {"DockerContainerID": "c0ffee" * 10 + "abcd", "Shell": "/bin/sh", "Args": ["/bin/sh", "-c", "test -f /ok"],
         "Interval": "60s", "Timeout": "20s"},
        {"HTTP": "https://127.0.0.3:8443/ready", "Interval": "60s", "Timeout": "20s"}]
    assert {c["Status"] for c in checks} == {"critical"}


def test_registrators_own_check_wins_and_no_health_checks_means_passing_at_once() -> None:
    app = health_app({"protocol": "TCP"})
    own = checks_of(app, SERVICE_CHECK_HTTP="/own", SERVICE_CHECK_INTERVAL="5s")
    assert own[0] == {"HTTP": "http://127.0.0.3:32000/own", "Interval": "5s"}
    assert checks_of({"id": "/shop/web"}) == [None, None]
    assert checks_of(health_app()) == [None, None]
