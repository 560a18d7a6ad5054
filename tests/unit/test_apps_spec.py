"""App specs to Marathon app definitions: fields pass through, shorthands expand, errors say where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from marathon_apps.repo import load_apps
from marathon_apps.spec import expand
from wharf.configrepo import Spec, SpecErrors, parse_yaml

pytestmark = pytest.mark.unit


def spec(text: str, name: str = "shop/web") -> Spec:
    data, lines = parse_yaml(text, f"apps/{name}.yaml")
    return Spec(f"apps/{name}.yaml", name, data, lines)


def app(text: str, name: str = "shop/web") -> dict[str, Any]:
    definition, errors = expand(spec(text, name))
    assert not errors, [str(e) for e in errors]
    return definition


def errors(text: str, name: str = "shop/web") -> list[str]:
    return [str(e) for e in expand(spec(text, name))[1]]


def test_marathon_fields_pass_through_and_the_id_comes_from_the_path() -> None:
    out = app("cmd: sleep 1\ncpus: 0.5\nmem: 64\ndisk: 10\ninstances: 3\nconstraints: [[hostname, UNIQUE]]\n"
              "upgradeStrategy: {minimumHealthCapacity: 0.5, maximumOverCapacity: 0}\ntty: false\n")
    assert out == {"id": "/shop/web", "cmd": "sleep 1", "cpus": 0.5, "mem": 64, "disk": 10, "instances": 3,
                   "constraints": [["hostname", "UNIQUE"]], "tty": False,
                   "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0},
                   "labels": {"wharf.owner": "wharf"}}


def test_image_ports_and_health_expand() -> None:
    out = app("image: wharf/busybox\ncmd: httpd\nports: [{name: http}, {name: admin, protocol: udp}]\n"
              "health: [{http: /health, port: admin, grace: 5, interval: 2, timeout: 1, failures: 4},"
              " {tcp: true}, {command: 'test -f /ok'}]\n")
    assert out["container"] == {"type": "DOCKER", "docker": {"image": "wharf/busybox"}}
    assert out["portDefinitions"] == [{"name": "http", "port": 0}, {"name": "admin", "protocol": "udp", "port": 0}]
    assert out["healthChecks"] == [
        {"protocol": "HTTP", "path": "/health", "portIndex": 1, "gracePeriodSeconds": 5, "intervalSeconds": 2,
         "timeoutSeconds": 1, "maxConsecutiveFailures": 4},
        {"protocol": "TCP", "portIndex": 0},
        {"protocol": "COMMAND", "command": {"value": "test -f /ok"}}]


def test_fixed_host_ports_require_ports_and_bridge_ports_become_mappings() -> None:
    assert app("cmd: x\nports: [{hostPort: 8080}]\n")["requirePorts"] is True
    bridged = app("image: i\nnetworks: [{mode: container/bridge}]\nports: [{name: http, containerPort: 80}]\n")
    assert bridged["container"]["portMappings"] == [{"name": "http", "containerPort": 80}]
    assert "portDefinitions" not in bridged


def test_lb_service_and_autoscale_become_labels() -> None:
    out = app("cmd: x\nlb: {group: external, vhost: [a.local, b.local], path: /api, mode: http, "
              "balance: leastconn, sticky: true, redirect_to_https: false, backend_weight: 2, port: 10080}\n"
              "service: {name: web, tags: [front, v2], check: {http: /health, interval: 10s, timeout: 1s},"
              " ports: {'80': {name: web-http}}}\nautoscale: {target_rps: 50, min: 1, max: 5}\n"
              "labels: {tier: front}\n")
    assert out["labels"] == {
        "tier": "front", "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "a.local,b.local", "HAPROXY_0_PATH": "/api",
        "HAPROXY_0_MODE": "http", "HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "true",
        "HAPROXY_0_REDIRECT_TO_HTTPS": "false", "HAPROXY_0_BACKEND_WEIGHT": "2", "HAPROXY_0_PORT": "10080",
        "SERVICE_NAME": "web", "SERVICE_TAGS": "front,v2", "SERVICE_CHECK_HTTP": "/health",
        "SERVICE_CHECK_INTERVAL": "10s", "SERVICE_CHECK_TIMEOUT": "1s", "SERVICE_80_NAME": "web-http",
        "wharf.autoscale.target_rps": "50", "wharf.autoscale.min": "1", "wharf.autoscale.max": "5",
        "wharf.owner": "wharf"}


def test_lb_as_a_list_names_each_port() -> None:
    out = app("cmd: x\nports: [{name: a}, {name: b}]\nlb: [{vhost: a.local}, {group: internal, port: 10001}]\n")
    assert {k: v for k, v in out["labels"].items() if k.startswith("HAPROXY")} == {
        "HAPROXY_0_VHOST": "a.local", "HAPROXY_1_GROUP": "internal", "HAPROXY_1_PORT": "10001"}


def test_after_resolves_against_the_folder_and_swap_off_sets_memory_swap() -> None:
    out = app("image: i\nmem: 64\nafter: [api, /db/main, ../edge]\nswap: false\nparameters: {ulimit: nofile=1024}\n")
    assert out["dependencies"] == ["/shop/api", "/db/main", "/edge"]
    assert out["container"]["docker"]["parameters"] == [{"key": "ulimit", "value": "nofile=1024"},
                                                        {"key": "memory-swap", "value": "64m"}]


@pytest.mark.parametrize(("text", "expected"), [
    ("cmd: x\ncolour: blue\n", "apps/shop/web.yaml:2: colour: is not a known property"),
    ("cmd: x\ninstances: two\n", "apps/shop/web.yaml:2: instances: must be an integer"),
    ("cmd: x\ncpus: 0\n", "apps/shop/web.yaml:2: cpus: is less than 0.001"),
    ("cmd: x\nhealth: {http: health}\n", "apps/shop/web.yaml:2: health.http: must be a path starting with /"),
    ("cmd: x\nhealth: {http: /, tcp: true}\n", "apps/shop/web.yaml:2: health: must say exactly one of"),
    ("cmd: x\nports: [{name: a}]\nhealth: {http: /, port: b}\n", "health.port: names no port of `ports` (a)"),
    ("cmd: x\nlb: {vhost: a, colour: red}\n", "apps/shop/web.yaml:2: lb.colour: is not a known property"),
    ("cmd: x\nlb: {sticky: yes please}\n", "lb.sticky: must be true or false, not a string"),
    ("cmd: x\nlb: {vhost: bad_host!.example}\n",
     "apps/shop/web.yaml:2: lb.vhost: 'bad_host!.example' is not a list of host names"),
    ("cmd: x\nlb: {balance: fastest}\n", "apps/shop/web.yaml:2: lb.balance: 'fastest' is not one of roundrobin"),
    ("cmd: x\nlb: [{path: no-slash}]\n", "lb[0].path: 'no-slash' is not a URL path"),
    ("cmd: x\nlb: {port: 70000}\n", "lb.port: '70000' is not in 1-65535"),
    ("cmd: x\nlabels: {HAPROXY_0_BALANCE: fastest}\n",
     "labels.HAPROXY_0_BALANCE: 'fastest' is not one of roundrobin"),
    ("cmd: x\nlabels: {HAPROXY_GROUP: 'ex ternal'}\n", "labels.HAPROXY_GROUP: 'ex ternal' is not a group name"),
    ("cmd: x\nautoscale: {min: 5, max: 2}\n", "autoscale.max: must not be less than min (5)"),
    ("cmd: x\nafter: [Not_An_Id]\n", "after[0]: 'Not_An_Id' is not a valid Marathon app id"),
    ("cmd: x\nid: /other\n", "id: must be /shop/web (the file's path under apps/), or be left out"),
    ("cmd: x\nlabels: {wharf.owner: me}\n", "labels.wharf.owner: is written by wharf"),
    ("cmd: x\nhealthChecks: [{protocol: HTTP, portIndex: 3}]\n",
     "apps/shop/web.yaml:2: healthChecks[0]: Health check port indices must address an element"),
    ("image: i\nports: [{containerPort: 80}]\n", "ports[0].containerPort: needs container networking"),
    ("cpus: 1\n", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'"),
])
def test_bad_specs_name_file_line_field_and_reason(text: str, expected: str) -> None:
    found = errors(text)
    assert any(expected in e for e in found), found


def test_every_lb_value_the_spec_accepts_is_one_the_renderer_honours() -> None:
    """The spec and the renderer read marathon-lb's labels with one parser: what the spec writes, the
    renderer routes by, with no problem logged."""
    from wharf.contracts.marathon_lb import label_problem

    out = app("cmd: x\nlb: {group: external, vhost: [A.local, '*.b.local'], path: /api, mode: tcp, "
              "balance: LeastConn, sticky: true, redirect_to_https: false, backend_weight: 3, port: 10080}\n"
              "labels: {HAPROXY_0_ENABLED: 'false', HAPROXY_1_SOMETHING_ELSE: 'any value'}\n")
    haproxy = {k: v for k, v in out["labels"].items() if k.startswith("HAPROXY_")}
    assert len(haproxy) == 11
    assert all(label_problem(k, v) is None for k, v in haproxy.items())


def test_an_invalid_path_is_an_invalid_id() -> None:
    (error,) = errors("cmd: x\n", name="Shop_1/web")
    assert error.startswith("apps/Shop_1/web.yaml:1: the file's path 'Shop_1/web' is not a valid Marathon app id")


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_repository_apps_come_in_dependency_order(tmp_path: Path) -> None:
    root = write(tmp_path, {"apps/web.yaml": "cmd: x\nafter: [api]\n", "apps/api.yaml": "cmd: x\nafter: [db]\n",
                            "apps/db.yaml": "cmd: x\n", "apps/tools/cron.yaml": "cmd: x\n"})
    assert [a.id for a in load_apps(root)] == ["/db", "/tools/cron", "/api", "/web"]


@pytest.mark.parametrize(("files", "expected"), [
    ({"apps/a.yaml": "cmd: x\nafter: [b]\n", "apps/b.yaml": "cmd: x\nafter: [a]\n"},
     "apps/a.yaml:2: after: dependency cycle: /a -> /b -> /a (apps/a.yaml, apps/b.yaml)"),
    ({"apps/a.yaml": "cmd: x\nafter: [ghost]\n"}, "apps/a.yaml:2: after: depends on /ghost, which is not an app"),
    ({"apps/a.yaml": "cmd: x\n", "apps/a.yml": "cmd: y\n"}, "apps/a.yml:1: app /a is also defined by apps/a.yaml"),
    ({"apps/a.yaml": "cmd: x\n", "apps/b.yaml": "cmd: {{ nope }}\n"}, "apps/b.yaml:1: undefined value: 'nope'"),
])
def test_repository_errors(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    with pytest.raises(SpecErrors) as info:
        load_apps(write(tmp_path, files))
    assert expected in str(info.value)


def test_the_example_repository_renders(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    apps = {a.id: a.definition for a in load_apps(examples, "dev")}
    assert list(apps) == ["/api", "/web"]
    assert apps["/web"]["dependencies"] == ["/api"]
    assert apps["/web"]["labels"]["HAPROXY_0_VHOST"] == "web.shop.localhost"
    assert yaml.safe_load((examples / "values" / "dev.yaml").read_text())["web"]["instances"] == apps["/web"][
        "instances"]


def test_render_command_writes_one_json_per_app_and_exits_2_on_bad_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wharf.cli import cli

    root = write(tmp_path / "repo", {"apps/shop/web.yaml": "cmd: x\nafter: [api]\n", "apps/shop/api.yaml": "cmd: y\n"})
    runner = CliRunner()
    result = runner.invoke(cli, ["apps", "render", str(root), "--out", str(tmp_path / "out"), "--json"], env={})
    assert result.exit_code == 0, result.output
    assert [a["id"] for a in json.loads(result.output)] == ["/shop/api", "/shop/web"]
    assert json.loads((tmp_path / "out" / "shop" / "web.json").read_text())["dependencies"] == ["/shop/api"]
    (root / "apps" / "shop" / "api.yaml").write_text("cmd: y\ninstances: -1\n")
    bad = runner.invoke(cli, ["apps", "render", str(root)], env={})
    assert bad.exit_code == 2 and "apps/shop/api.yaml:2: instances: is less than 0" in bad.output
