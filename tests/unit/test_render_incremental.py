"""The incremental render equals a full render, byte for byte, after every step of random changes.

A random catalog is changed by random registrations (new, or the same id with other values),
deregistrations, health flips of an instance or a whole node, and nodes going away. After every
step the catalog kept up to date by the changes equals one read from scratch, and the built-in
HAProxy template's text kept up to date service by service equals a full render of the same catalog
(the full render also keeps its slots from the step before, as the daemon does).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consul_templates import render, safe, slots
from consul_templates.catalog import Catalog
from consul_templates.incremental import Incremental

NODES = ("n1", "n2", "n3")
LABELS = st.fixed_dictionaries({}, optional={
    "HAPROXY_0_VHOST": st.sampled_from(["a.example.com", "b.example.com,*.c.example.com", "bad host"]),
    "HAPROXY_0_PATH": st.sampled_from(["/api", "/"]),
    "HAPROXY_0_MODE": st.sampled_from(["http", "tcp"]),
    "HAPROXY_0_BALANCE": st.sampled_from(["roundrobin", "leastconn", "fastest"]),
    "HAPROXY_0_PORT": st.sampled_from(["10001", "18080"]),
    "HAPROXY_0_ENABLED": st.sampled_from(["true", "false"]),
    "HAPROXY_GROUP": st.sampled_from(["external", "internal"]),
    "HAPROXY_0_STICKY": st.sampled_from(["true", "false"]),
})


@st.composite
def registration(draw: Any) -> tuple[str, str, dict[str, Any]]:
    """(node, service id, Consul's service JSON) for one of a few apps and plain services."""
    node = draw(st.sampled_from(NODES))
    app = draw(st.integers(0, 4))
    sid = f"{node}:task{draw(st.integers(0, 5))}"
    meta = {"marathon_app_id": f"/app{app}", "service_port": str(10000 + app % 3), "port_index": "0",
            **draw(LABELS)} if app < 4 else {}
    if draw(st.booleans()) and meta:
        meta["odd"] = "x;y"  # an unsafe meta value: left out, the rest kept
    return node, sid, {"ID": sid, "Service": f"svc{app}" if app < 4 else "plain web", "Tags": [],
                       "Address": draw(st.sampled_from(["10.0.0.1", "10.0.0.2", ""])),
                       "Port": draw(st.sampled_from([31000, 31001, 0])), "Meta": meta}


STEP = st.one_of(
    st.tuples(st.just("register"), registration()),
    st.tuples(st.just("deregister"), st.tuples(st.sampled_from(NODES), st.integers(0, 5))),
    st.tuples(st.just("flip"), st.tuples(st.sampled_from(NODES), st.integers(0, 5),
                                         st.sampled_from(["passing", "critical", "warning", "maintenance"]))),
    st.tuples(st.just("node"), st.tuples(st.sampled_from(NODES), st.sampled_from(["passing", "critical"]))),
    st.tuples(st.just("gone"), st.sampled_from(NODES)),
)


class World:
    """Consul's side: each node's registrations and the checks, as its API would answer them."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in NODES}
        self.checks: dict[tuple[str, str], dict[str, Any]] = {}

    def answer(self, node: str) -> dict[str, Any] | None:
        if node not in self.services:
            return None
        return {"Node": {"Node": node, "Address": f"192.168.0.{NODES.index(node) + 1}"},
                "Services": dict(self.services[node])}

    def check_list(self) -> list[dict[str, Any]]:
        return list(self.checks.values())

    def apply(self, step: tuple[str, Any]) -> tuple[set[str], bool]:
        """Apply a step; the nodes whose answer changed, and whether the checks changed."""
        kind, arg = step
        if kind == "register":
            node, sid, svc = arg
            self.services.setdefault(node, {})[sid] = svc
            return {node}, False
        if kind == "deregister":
            node, n = arg
            self.services.get(node, {}).pop(f"{node}:task{n}", None)
            self.checks.pop((node, f"{node}:task{n}"), None)
            return {node}, True
        if kind == "flip":
            node, n, status = arg
            sid = f"{node}:task{n}"
            check_id = "_service_maintenance:" + sid if status == "maintenance" else f"service:{sid}"
            status = "critical" if status == "maintenance" else status
            self.checks[node, sid] = {"Node": node, "CheckID": check_id, "ServiceID": sid, "Status": status}
            return set(), True
        if kind == "node":
            node, status = arg
            self.checks[node, ""] = {"Node": node, "CheckID": "serfHealth", "ServiceID": "", "Status": status}
            return set(), True
        self.services.pop(arg, None)
        self.checks = {k: v for k, v in self.checks.items() if k[0] != arg}
        return {arg}, True


TEMPLATE = render.load_template("haproxy")
SETTINGS = render.RenderSettings(http_port=18080, stats_port=9000, groups=("external",))


@settings(max_examples=150, deadline=None)
@given(st.lists(registration(), max_size=12), st.lists(STEP, min_size=1, max_size=25))
def test_incremental_render_equals_a_full_render_after_every_step(
        start: list[tuple[str, str, dict[str, Any]]], steps: list[tuple[str, Any]]) -> None:
    world = World()
    for node, sid, svc in start:
        world.services[node][sid] = svc
    catalog = Catalog.read([world.answer(n) for n in NODES], world.check_list())
    engine = Incremental(TEMPLATE, SETTINGS)
    first = engine.update({name: safe.clean_service(catalog.service(name))[0] for name in catalog.names})
    full = render.render(TEMPLATE, safe.clean(catalog.snapshot())[0], SETTINGS)
    assert engine.rendered.text == full.text and first.structural
    layout, before = full.layout, full
    for step in steps:
        nodes, checks_changed = world.apply(step)
        changed: set[str] = set()
        for node in nodes:
            changed |= catalog.set_node(node, world.answer(node))
        if checks_changed:
            changed |= catalog.set_checks(world.check_list())
        fresh = Catalog.read([a for a in map(world.answer, NODES) if a], world.check_list())
        assert catalog.snapshot() == fresh.snapshot()
        update = engine.update({name: safe.clean_service(catalog.service(name))[0] if catalog.service(name)
                                else None for name in changed})
        full = render.render(TEMPLATE, safe.clean(fresh.snapshot())[0], SETTINGS, layout)
        assert engine.rendered.text == full.text
        assert engine.rendered.layout == full.layout and set(engine.rendered.problems) == set(full.problems)
        assert engine.rendered.routes == full.routes
        if not update.structural:  # what the applier trusts to skip a reload
            assert slots.structure(before.routes, before.layout) == slots.structure(full.routes, full.layout)
        layout, before = full.layout, full
