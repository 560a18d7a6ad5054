"""Offer matching and TaskInfo building of the Marathon stand-in (pure)."""

from __future__ import annotations

import re
from typing import Any

from devcluster.marathon.constraints import Placement
from devcluster.marathon.launch import (
    RemainingOffer,
    fit,
    instance_of,
    new_instance_id,
    pick_ports,
    place,
    task_env,
    task_id_for,
    task_info,
)
from tests.upstream import upstream
from wharf.contracts.marathon_app import normalize_app


def mesos_offer(cpus: float = 1, mem: float = 512, ports: tuple[tuple[int, int], ...] = ((31000, 31009),),
                host: str = "127.0.0.2") -> dict[str, Any]:
    return {"id": {"value": "o1"}, "agent_id": {"value": "S0"}, "hostname": host,
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                          {"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]}}],
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r1"}}]}


def app(**fields: Any) -> dict[str, Any]:
    out = normalize_app({"id": "/web/api", "cmd": "sleep 1", "cpus": 0.5, "mem": 64, **fields})
    out["version"] = "2026-01-01T00:00:00.000Z"
    return out


def test_offer_is_read_from_the_v1_json() -> None:
    offer = RemainingOffer.from_mesos(mesos_offer())
    assert (offer.id, offer.agent_id, offer.hostname, offer.cpus, offer.mem) == ("o1", "S0", "127.0.0.2", 1, 512)
    assert offer.ports == ((31000, 31009),) and offer.attributes == {"rack": "r1"}


def test_ports_come_from_the_offer_unless_required() -> None:
    assert pick_ports(app(portDefinitions=[{"port": 0}, {"port": 0}]), [(31000, 31000), (31005, 31009)]) == (31000,
                                                                                                               31005)
    assert pick_ports(app(portDefinitions=[{"port": 8080}]), [(31000, 31001)]) == (31000,)
    required = app(portDefinitions=[{"port": 31004}], requirePorts=True)
    assert pick_ports(required, [(31000, 31009)]) == (31004,)
    assert pick_ports(required, [(31000, 31003)]) is None
    assert pick_ports(app(portDefinitions=[{"port": 0}, {"port": 0}]), [(31000, 31000)]) is None
    assert pick_ports(app(portDefinitions=[]), []) == ()


def test_fit_checks_resources_and_constraints() -> None:
    offer = RemainingOffer.from_mesos(mesos_offer(cpus=1, mem=100))
    assert fit(app(), offer, []) is not None
    assert fit(app(mem=128), offer, []) is None
    assert fit(app(cpus=2), offer, []) is None
    unique = app(constraints=[["hostname", "UNIQUE"]])
    assert fit(unique, offer, [Placement("S0", "127.0.0.2")]) is None
    assert fit(unique, offer, [Placement("S1", "127.0.0.3")]) is not None


def test_place_packs_instances_into_one_offer_until_it_is_full() -> None:
    offer = RemainingOffer.from_mesos(mesos_offer(cpus=1.2, mem=512))
    placed = place([(app(), [])], offer, {"/web/api": 5})
    assert len(placed) == 2
    assert [f.host_ports for _, f, _ in placed] == [(31000,), (31001,)]


def test_environment_is_marathons() -> None:
    env = task_env(app(portDefinitions=[{"port": 0, "name": "http"}, {"port": 0}], labels={"a.b": "1"},
                       env={"X": "y", "PORT": "override"},
                       container={"type": "DOCKER", "docker": {"image": "busybox"}}), "h", (31000, 31001))
    assert env["HOST"] == "h" and env["PORT0"] == "31000" and env["PORT1"] == "31001"
    assert env["PORTS"] == "31000,31001" and env["PORT_HTTP"] == "31000"
    assert env["PORT"] == "override" and env["X"] == "y"  # the app's env wins
    assert env["MARATHON_APP_ID"] == "/web/api" and env["MARATHON_APP_VERSION"] == "2026-01-01T00:00:00.000Z"
    assert env["MARATHON_APP_DOCKER_IMAGE"] == "busybox" and env["MARATHON_APP_RESOURCE_CPUS"] == "0.5"
    assert env["MARATHON_APP_LABELS"] == "A_B" and env["MARATHON_APP_LABEL_A_B"] == "1"


def test_task_info_for_docker_and_command_apps() -> None:
    offer = RemainingOffer.from_mesos(mesos_offer())
    docker = app(container={"type": "DOCKER", "docker": {"image": "busybox"}}, labels={"SERVICE_NAME": "api"})
    got = fit(docker, offer, [])
    assert got is not None
    info = task_info(docker, offer, got, "t1")
    assert info["container"]["docker"] == {"image": "busybox", "network": "HOST", "privileged": False,
                                           "force_pull_image": False}
    assert info["labels"] == {"labels": [{"key": "SERVICE_NAME", "value": "api"}]}
    assert info["command"]["value"] == "sleep 1" and info["command"]["shell"] is True
    assert {r["name"] for r in info["resources"]} == {"cpus", "mem", "ports"}
    plain = task_info(app(), offer, got, "t2")
    assert "container" not in plain and plain["agent_id"] == {"value": "S0"}


def test_ids_follow_the_raml_instance_id_pattern() -> None:
    text = upstream("marathon", "docs", "docs", "rest-api", "public", "api", "v2", "types",
                    "stringTypes.raml").read_text()
    pattern = re.search(r"InstanceId:\s+type: string\s+pattern: (\S+)", text)
    assert pattern is not None
    instance = new_instance_id("/web/api")
    assert re.fullmatch(pattern.group(1), instance) and instance.startswith("web_api.instance-")
    assert instance_of(task_id_for(instance)) == instance
