"""consul_templates' pure parts: snapshot, safe values, marathon-lb routes, slots, quiescence, indexes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import SandboxedEnvironment

from consul_templates import render, routes, safe, slots
from consul_templates.catalog import Catalog
from consul_templates.quiescence import Quiescence, parse_wait
from consul_templates.snapshot import ServiceInstance, Snapshot
from wharf.contracts.words import NAME_WORD
from wharf.errors import BadInput
from wharf.haproxy import servers_state
from wharf.retry import Retry
from wharf.watch import next_index

pytestmark = pytest.mark.unit


def app(app_id: str, service_port: int, port: int, *, node: str = "n1", index: int = 0, status: str = "passing",
        **labels: str) -> ServiceInstance:
    """An instance as the registrator writes a Marathon task's port: Meta with the app's labels."""
    meta = {"marathon_app_id": app_id, "service_port": str(service_port), "port_index": str(index),
            **{k if k.startswith("HAPROXY_GROUP") else f"HAPROXY_{index}_{k}": v for k, v in labels.items()}}
    name = app_id.strip("/").replace("/", "-")
    return ServiceInstance(f"{node}:{name}.{port}:{port}", name, node, "127.0.0.1", port, (), meta, status)


def routes_of(*instances: ServiceInstance, groups: tuple[str, ...] = ()) -> dict[str, routes.Route]:
    found, _ = routes.build_routes(Snapshot.of(instances), groups)
    return {r.name: r for r in found}


# --- snapshot ---------------------------------------------------------------------------------------

def test_the_order_consul_lists_nodes_and_services_in_changes_nothing() -> None:
    """The same registrations listed in any order give the same snapshot, routes and safe values."""
    def answer(node: str, ids: list[int]) -> dict:
        return {"Node": {"Node": node, "Address": "10.0.0.1"},
                "Services": {f"s{i}": {"ID": f"s{i}", "Service": f"web{i % 2}", "Port": 31000 + i, "Tags": [],
                                       "Address": "", "Meta": {"marathon_app_id": f"/web{i % 2}",
                                                               "service_port": "10000"}} for i in ids}}
    nodes = [answer("n1", [0, 1, 2]), answer("n2", [3, 4])]
    checks = [{"Node": "n2", "CheckID": "service:s3", "ServiceID": "s3", "Status": "critical"}]
    one = Snapshot.from_catalog(nodes, checks)
    for order in ([nodes[1], nodes[0]], [answer("n2", [4, 3]), answer("n1", [2, 0, 1])]):
        two = Snapshot.from_catalog(order, checks)
        assert two == one and routes.build_routes(two) == routes.build_routes(one)
        assert safe.clean(two) == safe.clean(one)
    assert [i.id for i in one.service("web1").instances] == ["s1", "s3"]  # by node, then id
    assert not one.service("web1").instances[1].passing


def test_snapshot_is_sorted_and_equal_for_equal_catalogs_in_any_order() -> None:
    a, b, c = app("/b", 10001, 31001), app("/a", 10000, 31000), app("/a", 10000, 31002, node="n0")
    one, two = Snapshot.of([a, b, c]), Snapshot.of([c, b, a])
    assert one == two and hash(one) == hash(two)
    assert [s.name for s in one.services] == ["a", "b"]
    assert [i.node for i in one.services[0].instances] == ["n0", "n1"]


def test_snapshot_from_catalog_takes_worst_of_service_and_node_checks_and_node_address() -> None:
    nodes = [{"Node": {"Node": "n1", "Address": "10.0.0.1"},
              "Services": {"web1": {"ID": "web1", "Service": "web", "Port": 80, "Tags": ["b", "a"], "Meta": {}},
                           "web2": {"ID": "web2", "Service": "web", "Address": "10.0.0.9", "Port": 81},
                           "web3": {"ID": "web3", "Service": "web", "Port": 82}}},
             {"Node": {"Node": "n2", "Address": "10.0.0.2"},
              "Services": {"web4": {"ID": "web4", "Service": "web", "Port": 80}}}]
    checks = [{"Node": "n1", "CheckID": "serfHealth", "Status": "passing", "ServiceID": ""},
              {"Node": "n1", "CheckID": "c1", "Status": "passing", "ServiceID": "web1"},
              {"Node": "n1", "CheckID": "c2", "Status": "critical", "ServiceID": "web2"},
              {"Node": "n1", "CheckID": "_service_maintenance:web3", "Status": "critical", "ServiceID": "web3"},
              {"Node": "n2", "CheckID": "serfHealth", "Status": "warning", "ServiceID": ""}]
    snap = Snapshot.from_catalog(nodes, checks)
    by_id = {i.id: i for i in snap.instances}
    assert by_id["web1"].address == "10.0.0.1" and by_id["web1"].tags == ("a", "b")
    assert by_id["web2"].address == "10.0.0.9"
    assert [by_id[k].status for k in ("web1", "web2", "web3", "web4")] == ["passing", "critical", "maintenance",
                                                                          "warning"]


@pytest.mark.parametrize("check_id", ["_service_maintenance:web1", "_node_maintenance"])
def test_a_maintenance_check_counts_even_when_every_check_says_passing(check_id: str) -> None:
    services = {sid: {"ID": sid, "Service": "web", "Port": port, "Tags": [], "Address": "", "Meta": {}}
                for sid, port in (("web1", 80), ("web2", 81))}
    nodes = [{"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Services": services}]
    owner = "web1" if "service" in check_id else ""
    checks = [{"Node": "n1", "CheckID": "service:web2", "Status": "passing", "ServiceID": "web2"},
              {"Node": "n1", "CheckID": check_id, "Status": "passing", "ServiceID": owner}]
    by_id = {i.id: i.status for i in Snapshot.from_catalog(nodes, checks).instances}
    assert by_id == {"web1": "maintenance", "web2": "maintenance" if "node" in check_id else "passing"}


def test_an_instances_meta_refuses_change() -> None:
    nodes = [{"Node": {"Node": "n1", "Address": "10.0.0.1"},
              "Services": {"web1": {"ID": "web1", "Service": "web", "Port": 80, "Tags": [], "Address": "",
                                    "Meta": {"marathon_app_id": "/web"}}}}]
    snap = Snapshot.from_catalog(nodes, [])
    meta = snap.instances[0].meta
    for change in (lambda: meta.__setitem__("k", "v"), lambda: meta.update(k="v"), lambda: meta.setdefault("k", "v"),
                   lambda: meta.pop("marathon_app_id"), lambda: meta.__delitem__("marathon_app_id"),
                   lambda: meta.clear(), lambda: meta.popitem()):
        with pytest.raises((TypeError, AttributeError)):
            change()
    assert dict(meta) == {"marathon_app_id": "/web"}
    again = Snapshot.from_catalog(copy.deepcopy(nodes), [])
    assert snap == again and hash(snap) == hash(again)


@pytest.mark.parametrize("odd", ["port as text", "unsafe address"])
def test_a_value_far_into_a_big_node_is_read_and_checked_like_the_first(odd: str) -> None:
    """One odd value among hundreds of good ones is still read with care, or still dropped."""
    count = 800
    services = {f"web{n}": {"ID": f"web{n}", "Service": f"web{n}", "Port": 1000 + n, "Tags": [], "Address": "",
                            "Meta": {"marathon_app_id": f"/web{n}"}} for n in range(count)}
    late = services[f"web{count - 3}"]
    if odd == "port as text":
        late["Port"] = "8080"
    else:
        late["Address"] = "10.0.0.9 check"
    snap = Snapshot.from_catalog([{"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Services": services}], [])
    clean, drops = safe.clean(snap)
    by_id = {i.id: i for i in clean.instances}
    if odd == "port as text":
        assert len(by_id) == count and by_id[f"web{count - 3}"].port == 8080 and not drops
    else:
        assert len(by_id) == count - 1 and f"web{count - 3}" not in by_id
        assert [(d.what, d.name) for d in drops] == [("instance", repr(f"web{count - 3}"))]


# --- safe values ------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("address", "10.0.0.1\n    server evil 1.2.3.4:80"), ("address", "1.2.3.4 check"), ("address", "a#b"),
    ("address", "fe80::1%eth0"), ("id", "x y"), ("id", 'a"b'), ("node", "n{1}"), ("port", 0), ("port", 70000),
])
def test_an_instance_with_an_unsafe_value_is_dropped_with_a_reason(field: str, value: object) -> None:
    good = ServiceInstance("id1", "web", "n1", "10.0.0.1", 80)
    bad = good._replace(**{"id": "id2", field: value})
    clean, drops = safe.clean(Snapshot.of([good, bad]))
    assert [i.id for i in clean.instances] == ["id1"]
    assert drops[0].what == "instance" and drops[0].service == "web" and drops[0].reason


def test_unsafe_service_names_tags_meta_and_kv_never_reach_the_snapshot() -> None:
    insts = [ServiceInstance("a", "web;evil", "n1", "10.0.0.1", 80),
             ServiceInstance("b", "web", "n1", "10.0.0.1", 81, ("ok", "bad tag", "x}"),
                             {"k": "v", "HAPROXY_0_BACKEND_HEAD": "a\nb"})]
    clean, drops = safe.clean(Snapshot.of(insts, {"cfg/ok": "1", "cfg/bad": "x; y"}))
    assert [s.name for s in clean.services] == ["web"]
    inst = clean.instances[0]
    assert inst.tags == ("ok",) and dict(inst.meta) == {"k": "v"} and dict(clean.kv) == {"cfg/ok": "1"}
    assert sorted(d.what for d in drops) == ["kv", "meta", "service", "tag", "tag"]


@pytest.mark.parametrize("where", ["service", "id", "tag", "meta key", "meta value", "kv"])
def test_a_newline_cannot_join_two_good_values_into_one(where: str) -> None:
    """Each part is allowed on its own; the newline between them must still keep the value out."""
    smuggled = "ok\nglobal"
    inst = ServiceInstance("web.1", "web", "n1", "10.0.0.1", 80, ("a",), {"k": "v"})
    inst = {"service": inst._replace(service=smuggled), "id": inst._replace(id=smuggled),
            "tag": inst._replace(tags=("a", smuggled)), "meta key": inst._replace(meta={"k": "v", smuggled: "v"}),
            "meta value": inst._replace(meta={"k": smuggled})}.get(where, inst)
    clean, drops = safe.clean(Snapshot.of([inst], {"cfg/x": smuggled} if where == "kv" else {}))
    written = [clean.services, *(i.tags for i in clean.instances), *(dict(i.meta) for i in clean.instances),
               dict(clean.kv)]
    assert smuggled not in repr(written)
    assert len(drops) == 1


_WORDS = {"name": NAME_WORD, "id": safe.INSTANCE_ID_WORD, "tag": safe.TAG_WORD, "value": safe.VALUE_WORD}
# every character some word allows, the ones no word allows that a config cares about, and unicode
_PIECES = st.one_of(st.sampled_from(sorted(set("".join(w.rest for w in _WORDS.values())))),
                    st.sampled_from(list(" \n\t\r#;'\"{}\\`$\x00é€")), st.just("a" * 130), st.just("b" * 300))


@settings(max_examples=300, deadline=None)
@given(word=st.sampled_from(sorted(_WORDS)), values=st.lists(st.lists(_PIECES, max_size=6).map("".join), max_size=6))
def test_checking_values_all_at_once_agrees_with_checking_each(word: str, values: list[str]) -> None:
    """The bulk check the snapshot goes through is the one-value rule, value by value."""
    rule = _WORDS[word]
    assert safe._every(rule, values) == all(rule.pattern().fullmatch(v) for v in values)


def test_bulk_checks_catch_a_long_value_a_bad_first_character_and_an_empty_one() -> None:
    assert not safe._every(safe.VALUE_WORD, ["ok", "x" * 513]) and safe._every(safe.VALUE_WORD, ["ok", "x" * 512])
    assert not safe._every(safe.VALUE_WORD, ["x" * 513, "ok"])
    assert not safe._every(safe.INSTANCE_ID_WORD, ["web.1", "-web.2"]) and not safe._every(NAME_WORD, [".x"])
    assert not safe._every(safe.TAG_WORD, ["a", "", "b"]) and not safe._every(safe.TAG_WORD, ["a", ""])
    assert safe._every(safe.VALUE_WORD, ["a", "", "b"]) and not safe._every(safe.VALUE_WORD, ["a", 5])  # type: ignore[list-item]


def test_odd_json_types_are_read_with_care_and_non_string_meta_left_out() -> None:
    nodes = [{"Node": {"Node": "n1", "Address": "10.0.0.1"},
              "Services": {"a": {"ID": "a", "Service": "web", "Port": "8080", "Meta": {"k": "v", "n": 5}},
                           "b": {"ID": "b", "Service": "web", "Port": 81}}}]  # no Tags, Meta or Address
    snap = Snapshot.from_catalog(nodes, [])
    a, b = snap.instances
    assert (a.port, a.address, b.port, b.tags, dict(b.meta)) == (8080, "10.0.0.1", 81, (), {})
    clean, drops = safe.clean(snap)
    assert dict(clean.instances[0].meta) == {"k": "v"} and [d.name for d in drops] == ["'n'"]
    fast = Snapshot.from_catalog([{"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Services": {
        "a": {"ID": "a", "Service": "web", "Address": "", "Port": 8080, "Tags": None, "Meta": {"k": "v"}},
        "b": {"ID": "b", "Service": "web", "Address": "", "Port": 81, "Tags": [], "Meta": {}}}}], [])
    assert fast == clean  # Consul's own shapes, read on the fast path, give the same snapshot


@pytest.mark.parametrize("value,ok", [("shop.example.com", True), ("*.example.com", True), ("a b", False),
                                      ("a;b", False), ("ex\u00e4mple.com", False), ("-x.com", False)])
def test_vhost_positions(value: str, ok: bool) -> None:
    assert safe.is_vhost(value) is ok


# --- routes: marathon-lb names and labels ------------------------------------------------------------

def test_names_follow_the_contract() -> None:
    found = routes_of(app("/shop/web", 10000, 31000), ServiceInstance("x", "redis-cache", "n1", "127.0.0.1", 6379))
    assert set(found) == {"shop_web_10000", "redis-cache"}
    assert found["shop_web_10000"].port == 10000 and found["redis-cache"].port is None
    assert routes.route_name("/shop/web", 10000) == "shop_web_10000"


def test_instances_of_one_app_port_share_a_route_and_only_passing_ones_serve() -> None:
    found = routes_of(app("/web", 10000, 31000), app("/web", 10000, 31001, status="critical"),
                      app("/web", 10001, 31002, index=1))
    assert [s.port for s in found["web_10000"].servers] == [31000]
    assert [s.port for s in found["web_10001"].servers] == [31002]


def test_two_registrations_of_one_address_and_port_give_one_server_the_first() -> None:
    one, two, other = app("/web", 10000, 31000), app("/web", 10000, 31000, node="n2"), app("/web", 10000, 31001)
    servers = routes_of(two, other, one)["web_10000"].servers
    assert [(s.port, s.node) for s in servers] == [(31000, "n1"), (31001, "n1")]


def test_apps_and_plain_services_mixed_each_get_their_route() -> None:
    padded = app("/web", 10000, 31001)._replace(meta={"marathon_app_id": "/web", "service_port": "010000"})
    plain = ServiceInstance("n1:db:5432", "db", "n1", "127.0.0.1", 5432, (), {"team": "data"})
    not_an_app = plain._replace(id="n2:db:5432", node="n2", address="127.0.0.2", meta={"service_port": "10000"})
    found = routes_of(app("/web", 10000, 31000), padded, plain, not_an_app)
    assert sorted(found) == ["db", "web_10000"]
    assert [s.port for s in found["web_10000"].servers] == [31000, 31001], "one port, however it is written"
    assert [s.node for s in found["db"].servers] == ["n1", "n2"], "a service without an app id is its own route"


@pytest.mark.parametrize("label,vhosts,exact,wildcards", [
    ("Shop.Example.com", ("shop.example.com",), ("shop.example.com",), ()),
    (" a.example.com , *.b.example.com,", ("a.example.com", "*.b.example.com"), ("a.example.com",),
     (".b.example.com",)),
    ("*.c.example.com", ("*.c.example.com",), (), (".c.example.com",)),
])
def test_vhost_labels_are_lowered_split_and_wildcards_kept_apart(
        label: str, vhosts: tuple[str, ...], exact: tuple[str, ...], wildcards: tuple[str, ...]) -> None:
    route = routes_of(app("/web", 10000, 31000, VHOST=label))["web_10000"]
    assert (route.vhosts, route.exact_vhosts, route.wildcard_suffixes) == (vhosts, exact, wildcards)


def test_labels_are_read_per_port_index() -> None:
    r = routes_of(app("/web", 10000, 31000, VHOST="Web.Example.com,*.web.org", PATH="/api", BALANCE="leastconn",
                      STICKY="true", REDIRECT_TO_HTTPS="1", BACKEND_WEIGHT="5"))["web_10000"]
    assert r.vhosts == ("web.example.com", "*.web.org") and r.path == "/api" and r.mode == "http"
    assert (r.balance, r.sticky, r.redirect_to_https, r.weight) == ("leastconn", True, True, 5)
    assert routes_of(app("/db", 10005, 31000))["db_10005"].mode == "tcp"


def test_port_label_renames_and_rebinds_and_enabled_false_leaves_out() -> None:
    found = routes_of(app("/web", 10000, 31000, PORT="10080"), app("/off", 10001, 31001, ENABLED="false"))
    assert set(found) == {"web_10080"} and found["web_10080"].port == 10080


def test_bad_label_values_are_ignored_with_a_problem() -> None:
    found, problems = routes.build_routes(Snapshot.of([app("/web", 10000, 31000, BALANCE="fastest", MODE="udp")]))
    assert found[0].balance == "roundrobin" and found[0].mode == "tcp"
    assert len(problems) == 2 and "HAPROXY_0_BALANCE" in problems[0].reason + problems[1].reason


def test_tcp_mode_drops_vhost_routing() -> None:
    found, problems = routes.build_routes(Snapshot.of([app("/web", 10000, 31000, VHOST="a.com", MODE="tcp")]))
    assert found[0].vhosts == () and "MODE http" in problems[0].reason


def test_group_filter_as_marathon_lb() -> None:
    insts = (app("/int", 10000, 31000, HAPROXY_GROUP="internal"), app("/ext", 10001, 31001),
             app("/per", 10002, 31002, GROUP="internal"))
    assert set(routes_of(*insts)) == {"int_10000", "ext_10001", "per_10002"}
    assert set(routes_of(*insts, groups=("internal",))) == {"int_10000", "per_10002"}
    assert set(routes_of(*insts, groups=("external",))) == {"ext_10001"}
    assert len(routes_of(*insts, groups=("*",))) == 3


def test_names_of_the_templates_own_proxies_are_refused() -> None:
    found, problems = routes.build_routes(Snapshot.of([ServiceInstance("s", "stats", "n1", "127.0.0.1", 80),
                                                       ServiceInstance("w", "web", "n1", "127.0.0.1", 81)]))
    assert [r.name for r in found] == ["web"] and "own proxy" in problems[0].reason


def test_a_taken_port_loses_its_own_frontend() -> None:
    found, problems = routes.build_routes(Snapshot.of([app("/a", 10000, 31000), app("/b", 10000, 31001),
                                                       app("/c", 80, 31002)]), reserved_ports=(80,))
    ports = {r.name: r.port for r in found}
    assert ports == {"a_10000": 10000, "b_10000": None, "c_80": None} and len(problems) == 2


def test_http_rules_order_weight_then_longer_path_first() -> None:
    found, _ = routes.build_routes(Snapshot.of([app("/a", 1, 1, VHOST="x.com"), app("/b", 2, 2, VHOST="x.com",
                                                PATH="/b/long"), app("/c", 3, 3, VHOST="x.com", BACKEND_WEIGHT="9")]))
    assert [r.name for r in routes.http_rules(found)] == ["c_3", "b_2", "a_1"]


# --- slots and the apply decision --------------------------------------------------------------------

def _layout(*instances: ServiceInstance, previous: slots.Layout | None = None
            ) -> tuple[tuple[routes.Route, ...], dict[str, tuple[routes.Server | None, ...]]]:
    found, _ = routes.build_routes(Snapshot.of(instances))
    return found, slots.assign(found, previous)


def test_servers_keep_their_slots_across_scaling() -> None:
    r1, l1 = _layout(app("/w", 1, 31000), app("/w", 1, 31001), app("/w", 1, 31002))
    assert len(l1["w_1"]) == 8
    r2, l2 = _layout(app("/w", 1, 31000), app("/w", 1, 31002), app("/w", 1, 31003), previous=l1)
    assert [s.port if s else None for s in l2["w_1"]][:4] == [31000, 31003, 31002, None]
    assert slots.structure(r1, l1) == slots.structure(r2, l2)  # no reload
    assert slots.moves(l1, l2, l2) == ("set server w_1/slot2 addr 127.0.0.1 port 31003",
                                       "set server w_1/slot2 state ready")


def test_emptied_slot_goes_to_maintenance() -> None:
    r1, l1 = _layout(app("/w", 1, 31000), app("/w", 1, 31001))
    r2, l2 = _layout(app("/w", 1, 31000), previous=l1)
    assert slots.moves(l1, l2, l2)[0] == "set server w_1/slot2 state maint"


def test_structural_changes_need_a_reload() -> None:
    r1, l1 = _layout(app("/w", 1, 31000))
    for change in ([app("/w", 1, 31000), app("/x", 2, 32000)],          # a new service
                   [app("/w", 1, 31000, VHOST="w.example.com")],          # a new vhost
                   [app("/w", 1, 31000 + i) for i in range(5)]):          # outgrows its slots
        r2, l2 = _layout(*change, previous=l1)
        assert slots.structure(r1, l1) != slots.structure(r2, l2), change
    assert slots.structure(r1, l1) == slots.structure(*_layout(app("/w", 1, 31000), previous=l1))
    assert slots.moves(l1, l1, l1) == ()


def test_a_written_config_gives_back_its_slots() -> None:
    r1, l1 = _layout(app("/w", 1, 31000), app("/w", 1, 31001), app("/w", 1, 31002))
    r2, l2 = _layout(app("/w", 1, 31000), app("/w", 1, 31002), app("/x", 2, 32000), previous=l1)
    text = render.render(render.load_template("haproxy"), Snapshot.of([app("/w", 1, 31000), app("/w", 1, 31002),
                                                                       app("/x", 2, 32000)]),
                         render.RenderSettings(), previous=l1).text
    seeded = slots.layout_from_config(text)
    assert {k: [s.key if s else None for s in v] for k, v in seeded.items()} == \
        {k: [s.key if s else None for s in v] for k, v in l2.items()}
    again = render.render(render.load_template("haproxy"), Snapshot.of([app("/w", 1, 31000), app("/w", 1, 31002),
                                                                        app("/x", 2, 32000)]),
                          render.RenderSettings(), previous=seeded).text
    assert again == text  # a restarted renderer writes the same bytes: no reload


def test_spare_slots_are_written_as_ranges() -> None:
    found, layout = _layout(app("/w", 1, 31000), app("/w", 1, 31001), app("/w", 1, 31002))
    r2, l2 = _layout(app("/w", 1, 31000), app("/w", 1, 31002), previous=layout)
    backend = slots.backends(r2, l2)[0]
    assert [s.name for s in backend.filled] == ["slot1", "slot3"] and backend.spare == ((2, 2), (4, 8))


# --- quiescence, indexes, hold-over ------------------------------------------------------------------

def test_quiescence_resets_to_min_but_never_passes_max() -> None:
    q = Quiescence(1.0, 3.0)
    assert not q.tick(0.0)
    q.change(0.0)
    assert not q.tick(0.9)
    q.change(0.9)  # timer back to 1.9
    assert not q.tick(1.5) and q.remaining(1.5) == pytest.approx(0.4)
    for t in (1.8, 2.7):
        q.change(t)
    assert not q.tick(2.9) and q.tick(3.0)  # capped at the deadline set by the first change
    assert not q.tick(10.0) and not q.pending


def test_zero_wait_fires_at_once() -> None:
    q = Quiescence(0.0, 0.0)
    q.change(5.0)
    assert q.tick(5.0)


@pytest.mark.parametrize("text,expected", [("2:10", (2.0, 10.0)), ("500ms:2s", (0.5, 2.0)), ("3", (3.0, 12.0)),
                                           ("0", (0.0, 0.0))])
def test_parse_wait(text: str, expected: tuple[float, float]) -> None:
    assert parse_wait(text) == expected


@pytest.mark.parametrize("text", ["x", "5:1", "-1:2"])
def test_parse_wait_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_wait(text)


@pytest.mark.parametrize("last,returned,expected", [
    (0, 10, (10, True)), (10, 10, (10, False)), (10, 12, (12, True)),
    (10, 3, (0, True)),   # went backwards: start again
    (0, 0, (1, True)), (1, 0, (1, False)),  # below 1 is treated as 1
])
def test_consul_index_rules(last: int, returned: int, expected: tuple[int, bool]) -> None:
    assert next_index(last, returned) == expected


def test_a_held_catalog_keeps_what_a_restarted_consul_lacks_until_released() -> None:
    def node(name: str, ports: list[int]) -> dict:
        return {"Node": {"Node": name, "Address": "10.0.0.1"},
                "Services": {f"w{p}": {"ID": f"w{p}", "Service": "w", "Port": p} for p in ports}}
    catalog = Catalog.read([node("n1", [31000, 31001]), node("n2", [32000])], [])
    catalog.hold()
    refilled = catalog.set_node("n1", node("n1", [31001])) | catalog.set_node("n2", None)
    refilled |= catalog.set_checks([{"Node": "n1", "CheckID": "service:w31001", "ServiceID": "w31001",
                                     "Status": "critical"}])
    held = catalog.service("w")
    assert refilled == {"w"} and held is not None
    assert {i.port: i.status for i in held.instances} == {31000: "passing", 31001: "critical", 32000: "passing"}
    assert catalog.release() == {"w"}
    assert [i.port for i in catalog.service("w").instances] == [31001]  # type: ignore[union-attr]
    assert catalog.set_node("n1", None) == {"w"} and catalog.service("w") is None and catalog.names == []


# --- templates ---------------------------------------------------------------------------------------

def test_a_broken_template_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "mine.cfg.j2"
    bad.write_text("global\n{% for s in services %}\n  {{ s.name }\n{% endfor %}\n")
    with pytest.raises(BadInput, match=r"mine\.cfg\.j2:3: "):
        render.load_template(str(bad))
    with pytest.raises(BadInput, match="no such file"):
        render.load_template(str(tmp_path / "absent.j2"))


def test_an_undefined_name_fails_the_render_with_its_line(tmp_path: Path) -> None:
    t = tmp_path / "t.j2"
    t.write_text("line one\n{{ services | length }}\n{{ nothing.here }}\n")
    with pytest.raises(render.RenderError, match=r"t\.j2:3: .*nothing"):
        render.render(render.load_template(str(t)), Snapshot(), render.RenderSettings())


def test_the_sandbox_refuses_unsafe_attribute_access(tmp_path: Path) -> None:
    t = tmp_path / "t.j2"
    t.write_text("{{ settings.__class__.__init__.__globals__ }}")
    with pytest.raises(render.RenderError):
        render.render(render.load_template(str(t)), Snapshot(), render.RenderSettings())


def test_a_template_that_tries_to_change_the_catalog_fails_with_its_line(tmp_path: Path) -> None:
    t = tmp_path / "t.j2"
    t.write_text("{% for i in services[0].instances %}\n{{ i.meta.update(k='v') }}\n{% endfor %}\n")
    snap = Snapshot.from_catalog([{"Node": {"Node": "n1", "Address": "10.0.0.1"}, "Services": {"web1": {
        "ID": "web1", "Service": "web", "Port": 80, "Tags": [], "Address": "", "Meta": {"a": "b"}}}}], [])
    with pytest.raises(render.RenderError, match=r"t\.j2:2: .*update"):
        render.render(render.load_template(str(t)), snap, render.RenderSettings())
    assert dict(snap.instances[0].meta) == {"a": "b"}


def test_a_copy_of_the_builtin_template_renders_the_same_in_the_sandbox(tmp_path: Path) -> None:
    """The built-ins render outside the sandbox (they are the room's own code); a user's copy of one
    is sandboxed, with the same context and the same output."""
    copy = tmp_path / "haproxy.cfg.j2"
    copy.write_text(render.BUILTIN["haproxy"].read_text())
    snap = Snapshot.of([app("/shop/web", 10000, 31000, VHOST="shop.example.com", STICKY="true"),
                        app("/shop/web", 10000, 31001, node="n2"), app("/db", 10001, 31002, PATH="/db")])
    builtin, user = render.load_template("haproxy"), render.load_template(str(copy))
    assert isinstance(user.jinja.environment, SandboxedEnvironment)
    assert not isinstance(builtin.jinja.environment, SandboxedEnvironment)
    settings = render.RenderSettings(http_port=18080)
    text = render.render(builtin, snap, settings).text
    assert text == render.render(user, snap, settings).text and "server slot2 127.0.0.1:31001" in text


def test_user_templates_get_services_kv_and_helper_filters(tmp_path: Path) -> None:
    t = tmp_path / "list.txt.j2"
    t.write_text("{% for s in services | passing | by_tag('web') %}{{ s.name }}:{% for i in s.instances %}"
                 "{{ i.port }} {% endfor %}\n{% endfor %}"
                 "{% for i in services[0].instances | by_meta('team', 'x') %}team {{ i.id }}\n{% endfor %}"
                 "kv={{ kv['cfg/a'] }}\n")
    snap = Snapshot.of([ServiceInstance("a1", "a", "n", "1.1.1.1", 1, ("web",), {"team": "x"}),
                        ServiceInstance("a2", "a", "n", "1.1.1.1", 2, ("web",), {}, "critical"),
                        ServiceInstance("b1", "b", "n", "1.1.1.1", 3, ("db",))], {"cfg/a": "7"})
    text = render.render(render.load_template(str(t)), snap, render.RenderSettings()).text
    assert text == "a:1 team a1\nkv=7\n"
    assert render.load_template(str(t)).kind == "plain" and render.load_template("nginx").kind == "nginx"


def test_builtin_haproxy_routes_vhosts_paths_and_ports() -> None:
    snap = Snapshot.of([app("/shop/web", 10000, 31000, VHOST="shop.example.com", PATH="/cart"),
                        app("/shop/web", 10000, 31001, VHOST="shop.example.com", PATH="/cart"),
                        app("/db", 10005, 32000)])
    text = render.render(render.load_template("haproxy"), snap, render.RenderSettings(http_port=8080)).text
    lines = [ln.strip() for ln in text.splitlines()]
    assert "frontend marathon_http_in" in lines and "bind 127.0.0.1:8080" in lines
    assert "acl host_shop_web_10000 req.hdr(host),field(1,:) -i shop.example.com" in lines
    assert "use_backend shop_web_10000 if host_shop_web_10000 path_shop_web_10000" in lines
    assert "frontend db_10005" in lines and "bind 127.0.0.1:10005" in lines
    assert "server slot2 127.0.0.1:31001" in lines and "server-template slot 3-4 127.0.0.1:1 disabled" in lines
    assert "option idle-close-on-response" in lines
    assert any(ln.startswith("stats socket") and ln.endswith("expose-fd listeners") for ln in lines)


def test_a_watch_follows_the_index_rules_rate_limits_and_reports_outages() -> None:
    import threading
    import time

    from wharf.watch import ConsulWatch

    answers = iter([(5, "a"), (5, "a"), (7, "b"), ConnectionError("down"), ConnectionError("down"), (3, "c"),
                    (0, "d"), (4, "e")])
    calls: list[tuple[float, int]] = []
    events: list[str] = []
    done = threading.Event()

    def fetch(index: int) -> tuple[int, str]:
        calls.append((time.monotonic(), index))
        try:
            answer = next(answers)
        except StopIteration:
            done.set()
            time.sleep(0.05)
            return 4, "e"
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = ConsulWatch("test", fetch, lambda name, kind: events.append(kind), rate_limit=0.05)
    watch.backoff = Retry(delay=0.01, max_delay=0.02, jitter=0)
    watch.start()
    assert done.wait(10)
    watch.stop()
    watch.join(5)
    # equal: no news; after an error: from 0; 0 counts as 1, which is backwards from 3: from 0 again
    assert [i for _, i in calls[:9]] == [0, 5, 5, 7, 0, 0, 3, 0, 4]
    assert events[:6] == ["change", "change", "down", "up", "reset", "change"]
    assert all(b - a >= 0.05 for (a, _), (b, _) in zip(calls, calls[1:], strict=False))  # the rate limit


# --- what a running HAProxy serves -------------------------------------------------------------------

SHOW_SERVERS_STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
2 b 1 slot1 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 9 - 0 0 - - 0
2 b 2 slot2 127.0.0.1 2 4 1 1 0 1 0 0 8 0 0 0 - 10 - 0 0 - - 0
2 b 3 slot3 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0
"""


def test_a_slot_written_disabled_then_set_ready_serves_and_one_set_to_maint_does_not() -> None:
    """HAProxy 2.6's own answer after `set server b/slot2 ... state ready` on a slot the config wrote
    `disabled` (admin state 4: only the config's mark) and `state maint` on slot1 (admin state 1)."""
    state = servers_state(SHOW_SERVERS_STATE)
    assert state == {("b", "slot1"): ("127.0.0.1", 9, False, False), ("b", "slot2"): ("127.0.0.1", 10, True, True),
                     ("b", "slot3"): ("127.0.0.1", 1, False, False)}
    web = ServiceInstance("w", "w", "n", "127.0.0.1", 10)
    assert slots.reconcile(state, {"b": (None, web, None)}) == ()
    assert slots.reconcile(state, {"b": (web, None, None)}) == (
        *slots.slot_commands("b", "slot1", web), *slots.slot_commands("b", "slot2", None))


def test_a_ready_slot_that_haproxys_own_check_finds_down_is_no_difference_to_fix() -> None:
    """With the built-in template's passive health, HAProxy may mark a ready server down (op state
    0, no maintenance bit): it is still in rotation as the renderer set it, so nothing is resent."""
    down = "2 b 1 slot1 127.0.0.1 0 0 1 1 0 1 0 0 0 0 0 0 - 9 - 0 0 - - 0"
    state = servers_state("\n".join(["1", SHOW_SERVERS_STATE.strip().splitlines()[1], down]))
    assert state[("b", "slot1")] == ("127.0.0.1", 9, True, False)
    web = ServiceInstance("w", "w", "n", "127.0.0.1", 9)
    assert slots.reconcile(state, {"b": (web,)}) == ()
    assert slots.reconcile(state, {"b": (None,)}) == slots.slot_commands("b", "slot1", None)
