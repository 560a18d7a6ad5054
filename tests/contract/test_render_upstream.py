"""The renderer against upstream artifacts: Consul's documented health entry, the registrations the
registrator sends, and HAProxy 2.6's own master CLI and Runtime API answers."""

from __future__ import annotations

import json

import pytest

from consul_templates import apply, routes, safe
from consul_templates.snapshot import Snapshot
from tests.upstream import upstream

pytestmark = pytest.mark.contract


def test_consuls_documented_health_entry_becomes_a_passing_instance() -> None:
    entries = json.loads(upstream("consul", "docs-samples", "health_service_my-service.json").read_text())
    snap = Snapshot.from_health(entries)
    inst = snap.instances[0]
    assert (inst.service, inst.address, inst.port, inst.node, inst.status) == ("redis", "10.1.10.12", 8000,
                                                                              "foobar", "passing")
    assert inst.tags == ("primary",) and inst.meta["redis_version"] == "4.0"


def test_catalog_node_sample_reads_services_and_falls_back_to_the_node_address() -> None:
    entry = json.loads(upstream("consul", "docs-samples", "catalog_node_my-node.json").read_text())
    snap = Snapshot.from_catalog([entry], [])
    by_id = {i.id: i for i in snap.instances}
    assert by_id["consul"].address == "10.1.10.12" and by_id["consul"].port == 8300
    assert by_id["redis"].tags == ("v1",)


def test_every_registration_the_registrator_sends_is_routed() -> None:
    cases = json.loads(upstream("registrator", "consul_register_payloads_derived.json").read_text())["cases"]
    for case in cases:
        body = case["register_body"]
        entry = {"Node": {"Node": "node1", "Address": "10.0.0.5"},
                 "Services": {body["ID"]: {"ID": body["ID"], "Service": body["Name"], "Tags": body["Tags"],
                                           "Address": body["Address"], "Port": body["Port"],
                                           "Meta": body["Meta"]}}}
        clean, drops = safe.clean(Snapshot.from_catalog([entry], []))
        assert not [d for d in drops if d.what in ("service", "instance")], (case["env"], drops)
        found, _ = routes.build_routes(clean)
        assert [r.name for r in found] == [routes.sanitise(body["Name"])], case["env"]
        assert [(s.address, s.port) for s in found[0].servers] == [(body["Address"], body["Port"])]


def test_master_show_proc_before_and_after_a_reload() -> None:
    before = apply.parse_show_proc(upstream("haproxy", "runtime-api-2.6", "master_show_proc.txt").read_text())
    after = apply.parse_show_proc(
        upstream("haproxy", "runtime-api-2.6", "master_show_proc_after_reload.txt").read_text())
    assert [(p.kind, p.reloads) for p in before] == [("master", 0), ("worker", 0)]
    master = next(p for p in after if p.kind == "master")
    assert (master.reloads, master.failed) == (1, 0)
    new = [p.pid for p in after if p.kind == "worker" and p.reloads == 0]
    old = [p.pid for p in before if p.kind == "worker"]
    assert new and new != old


def test_runtime_api_answers_are_told_apart() -> None:
    transcript = upstream("haproxy", "runtime-api-2.6", "runtime_api_transcript.txt").read_text()
    answers: dict[str, str] = {}
    command = None
    for line in transcript.splitlines():
        if line.startswith("> "):
            command = line[2:]
            answers[command] = ""
        elif command is not None and line.strip():
            answers[command] += line + "\n"
    ok = [c for c, a in answers.items() if not apply.refused(a)]
    bad = [c for c, a in answers.items() if apply.refused(a)]
    assert "set server be_web/slot1 addr 127.0.0.1 port 18102" in ok
    assert "set server be_web/slot1 state ready" in ok
    assert any(c.startswith("experimental-mode on; add server") for c in bad)  # a duplicate name
    assert "enable health be_web/dyn1" in bad


def test_server_state_file_format_is_what_haproxy_writes() -> None:
    text = upstream("haproxy", "runtime-api-2.6", "show_servers_state_after_reload_with_state_file.txt").read_text()
    lines = text.splitlines()
    assert lines[0] == "1"  # format version 1, as `show servers state` prints and the state file keeps
    header = lines[1].lstrip("# ").split()
    rows = [dict(zip(header, ln.split(), strict=True)) for ln in lines[2:] if ln.strip()]
    slots = {r["srv_name"]: (r["srv_addr"], r["srv_port"]) for r in rows}
    assert slots["slot1"] == ("127.0.0.1", "18102")  # runtime-set slots survive a reload
