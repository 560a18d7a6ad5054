"""What `wharf apps render` writes holds to the upstream contracts: Marathon's AppDefinition schema,
marathon-lb's label names and registrator's."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import jsonschema
import pytest

from marathon_apps.repo import load_apps
from marathon_apps.shorthands import LB_KEYS, SERVICE_CHECK_KEYS
from marathon_apps.spec import expand
from tests.upstream import upstream
from wharf.configrepo import Spec, parse_yaml

pytestmark = pytest.mark.contract

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EVERY_SHORTHAND = """
image: wharf/busybox:latest
cmd: httpd -f -p $PORT0
mem: 64
ports: [{name: http}, {name: admin, protocol: tcp}]
health: [{http: /health, port: http, grace: 10, interval: 2, timeout: 1, failures: 3}, {tcp: true, port: admin}]
lb: [{group: external, vhost: [a.local, b.local], path: /, mode: http, balance: roundrobin, sticky: true,
      redirect_to_https: true, backend_weight: 2, port: 10080}, {mode: tcp}]
service: {name: web, tags: [a], check: {http: /health, interval: 5s, timeout: 1s, deregister_after: 10m},
          ports: {"8080": {name: web-admin, check: {tcp: true}}}}
autoscale: {target_rps: 40, min: 1, max: 4, scale_up_stabilization: 30, scale_down_stabilization: 300, max_step: 2}
after: [api]
swap: false
parameters: {ulimit: nofile=1024}
"""


def rendered() -> list[dict]:
    data, lines = parse_yaml(EVERY_SHORTHAND, "apps/web.yaml")
    app, errors = expand(Spec("apps/web.yaml", "web", data, lines))
    assert not errors, errors
    return [app] + [a.definition for a in load_apps(EXAMPLES, "dev")]


def test_rendered_apps_pass_marathons_app_definition_schema() -> None:
    path = upstream("marathon", "docs", "docs", "rest-api", "public", "api", "v2", "schema", "AppDefinition.json")
    validator = jsonschema.Draft4Validator(json.loads(path.read_text()))
    for app in rendered():
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(app)]
        assert not errors, (app["id"], errors)


def test_lb_labels_are_marathon_lb_labels() -> None:
    with upstream("marathon-lb", "labels.csv").open() as f:
        known = {row["label"] for row in csv.DictReader(f)} | {"HAPROXY_GROUP"}  # app-wide group (its README)
    written = {re.sub(r"^HAPROXY_\d+_", "HAPROXY_{n}_", k) for app in rendered() for k in app["labels"]
               if k.startswith("HAPROXY_")}
    assert written >= {f"HAPROXY_{{n}}_{v}" for v in LB_KEYS.values()} - {"HAPROXY_{n}_GROUP"} | {"HAPROXY_GROUP"}
    assert written <= known, written - known


def test_service_labels_are_registrator_attributes() -> None:
    payloads = upstream("registrator", "consul_register_payloads_derived.json").read_text()
    for suffix in SERVICE_CHECK_KEYS.values():
        assert f"_CHECK_{suffix}\"" in payloads, f"registrator has no SERVICE_CHECK_{suffix}"
    labels = rendered()[0]["labels"]
    assert labels["SERVICE_8080_NAME"] == "web-admin" and labels["SERVICE_8080_CHECK_TCP"] == "true"
