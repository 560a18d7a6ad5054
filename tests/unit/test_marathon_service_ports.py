"""Service ports as Marathon assigns them: every 0 in portDefinitions or container portMappings."""

from __future__ import annotations

import copy
from typing import Any

from devcluster.marathon.apps import assign_service_ports, service_ports


def bridged(*mappings: dict[str, Any]) -> dict[str, Any]:
    return {"id": "/web", "networks": [{"mode": "container/bridge"}],
            "container": {"type": "DOCKER", "docker": {"image": "busybox"}, "portMappings": list(mappings)}}


def test_port_mappings_get_distinct_service_ports_clear_of_other_apps() -> None:
    app = bridged({"containerPort": 80, "servicePort": 0}, {"containerPort": 81}, {"containerPort": 82,
                                                                                  "servicePort": 10001})
    assign_service_ports(app, taken=[10000, 10002], previous=None)
    assert [m["servicePort"] for m in app["container"]["portMappings"]] == [10003, 10004, 10001]
    assert service_ports(app) == [10003, 10004, 10001]


def test_an_update_keeps_the_service_ports_of_the_previous_version() -> None:
    first = bridged({"containerPort": 80}, {"containerPort": 81})
    assign_service_ports(first, taken=[], previous=None)
    second = bridged({"containerPort": 80, "servicePort": 0}, {"containerPort": 81})
    assign_service_ports(second, taken=[10005], previous=first)
    assert service_ports(second) == service_ports(first) == [10000, 10001]
    grown = bridged({"containerPort": 80}, {"containerPort": 81}, {"containerPort": 82})
    assign_service_ports(grown, taken=[10002], previous=second)
    assert service_ports(grown) == [10000, 10001, 10003]


def test_port_definitions_follow_the_same_rule_and_fixed_ports_stay() -> None:
    app = {"id": "/api", "portDefinitions": [{"port": 0}, {"port": 12000}, {"port": 0}]}
    assign_service_ports(app, taken=[10000], previous=None)
    assert service_ports(app) == [10001, 12000, 10002]
    again = {"id": "/api", "portDefinitions": [{"port": 0}, {"port": 0}]}
    assign_service_ports(again, taken=[], previous=app)
    assert service_ports(again) == [10001, 12000]  # the previous version's ports, in order, as Marathon reuses them


def test_nothing_changes_without_a_zero() -> None:
    app = bridged({"containerPort": 80, "servicePort": 10080})
    before = copy.deepcopy(app)
    assign_service_ports(app, taken=[10080], previous=None)
    assert app == before
