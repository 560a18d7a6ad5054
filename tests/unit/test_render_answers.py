"""The renderer's daemon applies Consul's answers as they come, one query each for the node lists
and the failing checks, so the two sides can be at different indexes. A registration and its checks
come and go together in Consul; these tests hold that they do in the renderer too: a deregistered
instance never looks passing because its checks' answer came before its node's, and a new one
registered critical never looks passing because its node's answer came first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consul_templates.daemon import RenderDaemon

pytestmark = pytest.mark.unit

MAINT = {"Node": "n1", "CheckID": "_service_maintenance:web-2", "ServiceID": "web-2", "Status": "critical"}


def node(*ports: int) -> dict[str, Any]:
    return {"Node": {"Node": "n1", "Address": "127.0.0.1"},
            "Services": {f"web-{p}": {"ID": f"web-{p}", "Service": "web", "Port": p, "Address": "127.0.0.1",
                                      "Meta": {}} for p in ports}}


class Consul:
    """Answers of `Reader.raw` as Consul holds them now, at its current index."""

    def __init__(self, index: int, **paths: Any) -> None:
        self.index, self.paths, self.asked = index, paths, []

    def raw(self, path: str, params: Any = ()) -> tuple[int, dict[str, str], bytes]:
        self.asked.append(path)
        return 200, {"X-Consul-Index": str(self.index)}, json.dumps(self.paths[path]).encode()


def daemon(consul: Consul) -> RenderDaemon:
    d = RenderDaemon(renderer=None, reader=consul)  # type: ignore[arg-type]
    d.nodes = {"n1": object()}  # type: ignore[dict-item]  # the node's query runs
    d._answer("node:n1", "change", json.dumps(node(1, 2)).encode(), 10)
    d._answer("checks:critical", "change", json.dumps([MAINT]).encode(), 10)
    d._answer("checks:warning", "change", b"[]", 10)
    d.started = True
    return d


def serving(d: RenderDaemon) -> list[int]:
    service = d.catalog.service("web")
    return sorted(i.port for i in service.instances if i.passing) if service else []


def test_a_deregistered_instance_is_not_served_when_its_checks_go_before_its_registration() -> None:
    consul = Consul(20, **{"/v1/catalog/service/web": [{"Node": "n1", "ServiceID": "web-1"}]})  # web-2 went at 20
    d = daemon(consul)
    assert serving(d) == [1]  # web-2 drained
    changed, _ = d._answer("checks:critical", "change", b"[]", 20)  # its maintenance check is gone...
    assert consul.asked == ["/v1/catalog/service/web"]  # ...so its service is read as it is now
    assert serving(d) == [1] and "web" in changed
    assert "web-2" not in d.catalog.nodes["n1"].services


def test_an_instance_whose_maintenance_ends_is_served_again() -> None:
    consul = Consul(20, **{"/v1/catalog/service/web": [{"Node": "n1", "ServiceID": f"web-{p}"} for p in (1, 2)]})
    d = daemon(consul)
    d._answer("checks:critical", "change", b"[]", 20)
    assert serving(d) == [1, 2]


def test_a_new_registration_is_not_served_before_its_critical_check_is_known() -> None:
    check = {"Node": "n1", "CheckID": "service:web-3", "ServiceID": "web-3", "Status": "critical"}
    consul = Consul(30, **{"/v1/health/node/n1": [check, {**check, "CheckID": "serfHealth", "ServiceID": "",
                                                           "Status": "passing"}]})
    d = daemon(consul)
    d._answer("node:n1", "change", json.dumps(node(1, 2, 3)).encode(), 30)  # before the checks' answer
    assert consul.asked == ["/v1/health/node/n1"]
    assert serving(d) == [1]  # web-3 waits for its check
    # the checks' answers catch up (one with news, one whose index alone moved): the node's own read
    # gives way to them, and when the check passes, web-3 is served
    d._answer("checks:critical", "change", json.dumps([MAINT, check]).encode(), 30)
    d._answer("checks:warning", "change", None, 30)
    assert d.fresh == {} and serving(d) == [1]
    consul.paths["/v1/catalog/service/web"] = [{"Node": "n1", "ServiceID": f"web-{p}"} for p in (1, 2, 3)]
    d._answer("checks:critical", "change", json.dumps([MAINT]).encode(), 31)
    assert serving(d) == [1, 3]


def test_a_node_read_that_fails_leaves_the_answers_as_they_came() -> None:
    class Down(Consul):
        def raw(self, path: str, params: Any = ()) -> tuple[int, dict[str, str], bytes]:
            raise OSError("connection refused")
    d = daemon(Down(0))
    d._answer("node:n1", "change", json.dumps(node(1, 2, 3)).encode(), 30)
    assert serving(d) == [1, 3]  # as before: the checks' answer will say it soon


def test_a_node_whose_own_check_recovers_is_read_whole() -> None:
    serf = {"Node": "n1", "CheckID": "serfHealth", "ServiceID": "", "Status": "critical"}
    consul = Consul(20, **{"/v1/catalog/node/n1": node(1)})  # web-2 left while the node was down
    d = daemon(consul)
    d._answer("checks:critical", "change", json.dumps([MAINT, serf]).encode(), 15)
    assert serving(d) == []  # a failing node serves nothing
    d._answer("checks:critical", "change", b"[]", 20)
    assert consul.asked == ["/v1/catalog/node/n1"] and serving(d) == [1]
