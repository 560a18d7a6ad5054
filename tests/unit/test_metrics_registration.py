"""A daemon's metrics endpoint in Consul (`wharf.announce`): registered, kept, deregistered on a clean
stop, a failure one warning; and nothing else in wharf takes it for one of its own services."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from consul_templates import routes
from consul_templates.snapshot import ServiceInstance, Snapshot
from observe.links import CatalogEntry, View, app_ids
from registrator.model import listing
from registrator.reconcile import reconcile
from tests.polling import wait_for
from wharf.announce import Announcer, registration

pytestmark = pytest.mark.unit

BODY = registration("registrator", "127.0.0.1", 9101, "node1")


class Agent:
    """The few calls the announcer makes of py-consul's client, on an agent the test can break."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {}
        self.down = False
        self.calls: list[str] = []
        self.agent = self
        self.service = self
        self.http = type("Http", (), {"base_uri": "http://127.0.0.1:8500"})()

    def services(self) -> dict[str, dict[str, Any]]:
        if self.down:
            raise ConnectionError("Connection refused")
        return dict(self.held)

    def register(self, name: str, **body: Any) -> None:
        self.calls.append(f"register {body['service_id']}")
        self.held[body["service_id"]] = {"Service": name, **body}

    def deregister(self, service_id: str) -> None:
        self.calls.append(f"deregister {service_id}")
        self.held.pop(service_id, None)


def test_the_registration_names_the_daemon_and_checks_its_metrics() -> None:
    assert BODY == {"name": "wharf-registrator", "service_id": "node1:wharf-registrator:9101",
                    "address": "127.0.0.1", "port": 9101, "tags": ["wharf-metrics"],
                    "meta": {"wharf_daemon": "registrator"},
                    "check": {"http": "http://127.0.0.1:9101/metrics", "interval": "5s", "timeout": "2s"}}


def test_it_registers_once_again_after_the_agent_lost_it_and_deregisters_on_stop() -> None:
    agent = Agent()
    announcer = Announcer(agent, BODY, logging.getLogger("test"), every=0.01).start()
    wait_for(lambda: BODY["service_id"] in agent.held, 5, "the registration")
    agent.held.clear()  # a Consul agent restarted empty
    wait_for(lambda: BODY["service_id"] in agent.held, 5, "the registration again")
    announcer.stop()
    assert agent.calls == ["register node1:wharf-registrator:9101"] * 2 + ["deregister node1:wharf-registrator:9101"]
    assert agent.held == {}


def test_a_failing_agent_is_one_warning_and_retried_until_it_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test")
    agent = Agent()
    agent.down = True
    announcer = Announcer(agent, BODY, logging.getLogger("test"), every=0.01).start()
    wait_for(lambda: len(caplog.records) >= 1, 5, "the warning")
    agent.down = False
    wait_for(lambda: BODY["service_id"] in agent.held, 5, "the registration once the agent answers")
    announcer.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["metrics not registered in consul", "metrics registered in consul"]


def test_a_daemon_that_never_registered_deregisters_nothing() -> None:
    agent = Agent()
    agent.down = True
    announcer = Announcer(agent, BODY, logging.getLogger("test"), every=60).start()
    announcer.stop()
    assert agent.calls == []


AGENT_ENTRY = {"ID": BODY["service_id"], "Service": BODY["name"], "Address": "127.0.0.1", "Port": 9101,
               "Tags": ["wharf-metrics"], "Meta": {"wharf_daemon": "registrator"}}


def test_no_registrator_ever_deregisters_it() -> None:
    held = listing({AGENT_ENTRY["ID"]: AGENT_ENTRY}, {})
    assert reconcile([], held, "wharf-registrator@node1").empty


def test_the_renderer_does_not_route_it_but_routes_a_plain_service() -> None:
    metrics = ServiceInstance(BODY["service_id"], "wharf-registrator", "node1", "127.0.0.1", 9101,
                              ("wharf-metrics",), {"wharf_daemon": "registrator"})
    plain = ServiceInstance("node1:redis:6379", "redis", "node1", "127.0.0.1", 6379)
    found, problems = routes.build_routes(Snapshot.of([metrics, plain]))
    assert [r.name for r in found] == ["redis"] and problems == ()


def test_trace_does_not_take_it_for_an_app() -> None:
    traced = CatalogEntry(BODY["service_id"], "wharf-registrator", "node1", "127.0.0.1", 9101,
                                {"wharf_daemon": "registrator"}, ())
    view = View(0.0, {"/web": {"id": "/web", "labels": {}}}, [], [traced], {})
    assert app_ids(view) == ["/web"] and "/web" not in view.by_app
