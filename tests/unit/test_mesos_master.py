"""The Mesos stand-in's pure core: resources, allocation, filters, launches, updates, failover."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.mesos.master import Master
from devcluster.mesos.model import FrameworkRemoved, Kill, StatusReport
from devcluster.mesos.offers import AgentInfo, Filter, check_launch, filters_out, make_agents, pick_framework
from devcluster.mesos.protocol import BadCall, parse_call, parse_task, record
from devcluster.mesos.resources import Resources, merge_ranges, ranges_contain, subtract_ranges
from devcluster.mesos.zk import ZkUrl, ip_as_int, master_info

pytestmark = pytest.mark.unit

MID = "m-1"
T0 = 1000.0


# --- helpers --------------------------------------------------------------------------------

def spans(count: int) -> list[tuple[int, int]]:
    """Port ranges as a stand-in might claim them: 31000-31999, 32000-32999, ..."""
    return [(31000 + i * 1000, 31999 + i * 1000) for i in range(count)]


def new_master(agents: int = 3, **kw: Any) -> Master:
    return Master(MID, make_agents(MID, spans(agents)), master_info(MID, "127.0.0.1", 5050, "127.0.0.1", "1.11.0"),
                  started=T0, **kw)


def subscribe(master: Master, name: str = "fw", stream: str = "s1", now: float = T0, **info: Any) -> str:
    effects = master.subscribe({"framework_info": {"user": "root", "name": name, **info}}, None, stream, now)
    return effects.events[0][1]["subscribed"]["framework_id"]["value"]


def offers_by_agent(effects: Any, framework_id: str) -> dict[str, dict[str, Any]]:
    out = {}
    for fid, ev in effects.events:
        if fid == framework_id and ev["type"] == "OFFERS":
            out.update({o["agent_id"]["value"]: o for o in ev["offers"]["offers"]})
    return out


def updates(effects: Any) -> list[dict[str, Any]]:
    return [ev["update"]["status"] for _, ev in effects.events if ev["type"] == "UPDATE"]


def task(task_id: str, agent_id: str, cpus: float = 1, mem: float = 128, ports: tuple = (),
         **extra: Any) -> dict[str, Any]:
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]
    if ports:
        resources.append({"name": "ports", "type": "RANGES",
                          "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]}})
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "resources": resources, "command": {"value": "sleep 100"}, **extra}


def launch(master: Master, fid: str, offer: dict[str, Any], tasks: list[dict[str, Any]], now: float = T0,
           filters: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"offer_ids": [offer["id"]],
                            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]}
    if filters is not None:
        body["filters"] = filters
    return master.accept(master.frameworks[fid], body, now)


def offer_resources(offer: dict[str, Any]) -> Resources:
    return Resources.from_proto(offer["resources"])


# --- resources ------------------------------------------------------------------------------

def test_ranges_arithmetic() -> None:
    assert merge_ranges([(5, 6), (1, 2), (3, 4)]) == ((1, 6),)
    assert merge_ranges([(5, 6), (1, 3)]) == ((1, 3), (5, 6))
    assert subtract_ranges([(31000, 31999)], [(31000, 31000), (31500, 31501)]) == (
        (31001, 31499), (31502, 31999))
    assert ranges_contain([(1, 10)], [(2, 3), (10, 10)])
    assert not ranges_contain([(1, 10)], [(10, 11)])


ranges = st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)).map(lambda t: (t[0], t[0] + t[1])),
                  max_size=6)


@given(ranges, ranges)
def test_ranges_subtract_matches_sets(a: list, b: list) -> None:
    def numbers(rs: Any) -> set[int]:
        return {n for lo, hi in rs for n in range(lo, hi + 1)}

    assert numbers(subtract_ranges(a, b)) == numbers(a) - numbers(b)
    assert numbers(merge_ranges(a)) == numbers(a)
    assert ranges_contain(a, b) == (numbers(b) <= numbers(a))


@given(st.floats(0, 64), st.floats(0, 64), ranges)
def test_resources_taken_then_returned_are_whole_again(cpus: float, taken: float, ports: list) -> None:
    total = Resources.of(cpus=64, mem=1024, ports=[(0, 300)])
    part = Resources.of(cpus=round(taken, 3), mem=1, ports=ports)
    assert total.contains(part)
    assert (total - part) + part == total


def test_resources_round_trip_proto_and_state() -> None:
    res = Resources.of(cpus=1.5, mem=256, disk=0, ports=[(31000, 31001)])
    assert Resources.from_proto(res.to_proto("*")) == res
    assert res.to_state() == {"cpus": 1.5, "mem": 256, "disk": 0.0, "gpus": 0.0, "ports": "[31000-31001]"}
    assert Resources.of(cpus=0.1) + Resources.of(cpus=0.2) == Resources.of(cpus=0.3)
    with pytest.raises(ValueError):
        Resources.from_proto([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}])


# --- agents, filters, choices ---------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 3, 100])
def test_agents_have_own_addresses_and_the_port_ranges_given(count: int) -> None:
    ranges = [(40000 + 7 * i, 40000 + 7 * i + 5) for i in range(count)]
    agents = make_agents(MID, ranges)
    assert [a.id for a in agents] == [f"{MID}-S{i}" for i in range(count)]
    assert len({a.hostname for a in agents}) == count and agents[0].hostname == "127.0.0.2"
    assert [a.total.ranges["ports"] for a in agents] == [(r,) for r in ranges]
    assert dict(agents[0].attributes).keys() == {"rack", "zone"}


def test_candidate_blocks_cover_the_grid_once_clear_of_the_ephemeral_range_first() -> None:
    from devcluster.mesos.ports import BLOCK, PORTS_FROM, PORTS_TO, candidate_blocks

    blocks = candidate_blocks((32768, 60999), random.Random(1))
    assert sorted(blocks) == list(range(PORTS_FROM, PORTS_TO - BLOCK + 2, BLOCK))
    clear = [b for b in blocks if b + BLOCK - 1 < 32768 or b > 60999]
    assert blocks[:len(clear)] == clear and 61000 in clear and 32700 not in clear and 32600 in clear
    assert blocks != candidate_blocks((32768, 60999), random.Random(2))  # shuffled: stand-ins rarely contend


def test_filter_holds_only_what_was_refused_until_expiry() -> None:
    flt = Filter(Resources.of(cpus=2, mem=100), until=T0 + 5)
    assert filters_out(flt, Resources.of(cpus=1, mem=100), T0)
    assert not filters_out(flt, Resources.of(cpus=3, mem=100), T0)  # more became free: offer it
    assert not filters_out(flt, Resources.of(cpus=1), T0 + 5)
    assert not filters_out(None, Resources.of(cpus=1), T0)


def test_pick_framework_prefers_lowest_share_then_least_recent() -> None:
    total = Resources.of(cpus=10, mem=100)
    allocated = {"a": Resources.of(cpus=5), "b": Resources.of(mem=10)}
    assert pick_framework(["a", "b"], allocated, total, {}) == "b"
    assert pick_framework(["a", "c"], allocated, total, {}) == "c"
    assert pick_framework(["x", "y"], {}, total, {"x": 5.0, "y": 1.0}) == "y"
    assert pick_framework([], {}, total, {}) is None


def test_check_launch_takes_tasks_in_order() -> None:
    specs = [parse_task(task("a", "S0", cpus=2)), parse_task(task("b", "S0", cpus=2)),
             parse_task(task("a", "S0", cpus=0.1)), parse_task(task("c", "S9", cpus=0.1))]
    verdicts, unused = check_launch(specs, Resources.of(cpus=3, mem=1000), "S0", [])
    assert verdicts[0].error is None
    assert "more resources" in (verdicts[1].error or "")
    assert "duplicate ID" in (verdicts[2].error or "")
    assert "invalid agent" in (verdicts[3].error or "")
    assert unused == Resources.of(cpus=1, mem=872)


# --- calls ----------------------------------------------------------------------------------

def test_parse_call_errors_read_like_mesos() -> None:
    with pytest.raises(BadCall, match="Failed to parse body into JSON"):
        parse_call(b"{nope")
    with pytest.raises(BadCall, match="Failed to find enum for 'FOO'"):
        parse_call(b'{"type": "FOO"}')
    with pytest.raises(BadCall, match="Expecting 'type'"):
        parse_call(b"{}")
    with pytest.raises(BadCall, match="Expecting 'framework_id'"):
        parse_call(b'{"type": "REVIVE"}')
    assert parse_call(b'{"type": "REVIVE", "framework_id": {"value": "f"}}').framework_id == "f"


def test_parse_task_reads_command_container_and_problems() -> None:
    info = task("t", "S0", labels={"labels": [{"key": "k", "value": "v"}]},
                command={"value": "x", "shell": False, "arguments": ["x", "-y"],
                         "environment": {"variables": [{"name": "A", "value": "1"}]}},
                container={"type": "DOCKER", "docker": {"image": "img", "network": "HOST"},
                           "volumes": [{"container_path": "/d", "host_path": "/tmp", "mode": "RO"}]})
    spec = parse_task(info)
    assert spec.command and spec.command.arguments == ("x", "-y") and spec.command.environment == (("A", "1"),)
    assert spec.container and spec.container.image == "img" and spec.container.volumes[0].read_only
    assert spec.labels == (("k", "v"),) and spec.problem is None
    assert "uris" in (parse_task(task("u", "S0", command={"value": "x", "uris": [{"value": "http://x"}]})).problem
                      or "")
    with pytest.raises(BadCall):
        parse_task({"name": "t", "agent_id": {"value": "S0"}})


def test_record_is_length_prefixed_json() -> None:
    data = record({"type": "HEARTBEAT"})
    length, _, payload = data.partition(b"\n")
    assert int(length) == len(payload) and json.loads(payload) == {"type": "HEARTBEAT"}


# --- the master -----------------------------------------------------------------------------

def test_subscribe_then_one_offer_per_agent_with_everything_free() -> None:
    master = new_master()
    fid = subscribe(master)
    assert fid == f"{MID}-0000"
    offers = offers_by_agent(master.tick(T0), fid)
    assert set(offers) == set(master.agents)
    for agent_id, offer in offers.items():
        assert offer_resources(offer) == master.agents[agent_id].total
        assert offer["hostname"] == master.agents[agent_id].hostname
        assert [a["name"] for a in offer["attributes"]] == ["rack", "zone"]
        assert all(a["type"] == "TEXT" for a in offer["attributes"])
    assert offers_by_agent(master.tick(T0 + 1), fid) == {}  # outstanding offers are not offered twice


def test_decline_filters_the_agent_for_refuse_seconds() -> None:
    master = new_master()
    fid = subscribe(master)
    offers = offers_by_agent(master.tick(T0), fid)
    first, *others = sorted(offers)
    fw = master.frameworks[fid]
    master.decline(fw, {"offer_ids": [offers[first]["id"]], "filters": {"refuse_seconds": 10}}, T0)
    master.decline(fw, {"offer_ids": [offers[a]["id"] for a in others], "filters": {"refuse_seconds": 0}}, T0)
    assert set(offers_by_agent(master.tick(T0 + 0.1), fid)) == set(others)
    assert master.next_deadline() == T0 + 10
    assert offers_by_agent(master.tick(T0 + 9.9), fid) == {}
    assert set(offers_by_agent(master.tick(T0 + 10), fid)) == {first}


def test_decline_without_filters_uses_mesos_default_of_five_seconds() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    master.decline(master.frameworks[fid], {"offer_ids": [offer["id"]]}, T0)
    assert offers_by_agent(master.tick(T0 + 4.9), fid) == {}
    assert offers_by_agent(master.tick(T0 + 5.0), fid) != {}


def test_suppress_stops_offers_and_revive_brings_them_back_clearing_filters() -> None:
    master = new_master(agents=2)
    fid = subscribe(master)
    fw = master.frameworks[fid]
    offers = offers_by_agent(master.tick(T0), fid)
    master.decline(fw, {"offer_ids": [o["id"] for o in offers.values()], "filters": {"refuse_seconds": 100}}, T0)
    master.suppress(fw)
    assert offers_by_agent(master.tick(T0 + 200), fid) == {}
    master.revive(fw)
    assert len(offers_by_agent(master.tick(T0 + 200), fid)) == 2


def test_revive_lifts_unexpired_filters() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    fw = master.frameworks[fid]
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    master.decline(fw, {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 1000}}, T0)
    assert offers_by_agent(master.tick(T0 + 1), fid) == {}
    master.revive(fw)
    assert len(offers_by_agent(master.tick(T0 + 1), fid)) == 1


def test_launch_takes_resources_and_later_offers_exclude_them() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    agent_id = offer["agent_id"]["value"]
    effects = launch(master, fid, offer, [task("t1", agent_id, cpus=1.5, mem=512, ports=[(31000, 31001)])],
                     filters={"refuse_seconds": 0})
    (started,) = effects.launches
    assert started.task.task_id == "t1" and started.agent.id == agent_id
    assert master.frameworks[fid].tasks["t1"].state == "TASK_STAGING"
    assert updates(effects) == []  # Mesos sends no TASK_STAGING update
    (again,) = offers_by_agent(master.tick(T0 + 0.1), fid).values()
    free = offer_resources(again)
    assert free == master.agents[agent_id].total - Resources.of(cpus=1.5, mem=512, ports=[(31000, 31001)])
    assert free.scalar("cpus") == 2.5 and free.ranges["ports"] == ((31002, 31999),)


def test_accept_filters_unused_resources_for_default_refuse_seconds() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    launch(master, fid, offer, [task("t1", offer["agent_id"]["value"])])
    assert offers_by_agent(master.tick(T0 + 1), fid) == {}
    assert offers_by_agent(master.tick(T0 + 5), fid) != {}


def test_launching_more_than_offered_is_task_error_and_holds_nothing() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    effects = launch(master, fid, offer, [task("big", offer["agent_id"]["value"], cpus=64)],
                     filters={"refuse_seconds": 0})
    assert effects.launches == []
    (status,) = updates(effects)
    assert status["state"] == "TASK_ERROR" and status["reason"] == "REASON_TASK_INVALID"
    assert status["source"] == "SOURCE_MASTER" and "uuid" not in status
    assert "more resources" in status["message"]
    assert master.used[offer["agent_id"]["value"]].is_empty()


def test_invalid_offer_gives_task_lost_or_dropped_for_partition_aware() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    bogus = {**offer, "id": {"value": "nope"}}
    (status,) = updates(launch(master, fid, bogus, [task("t", offer["agent_id"]["value"])]))
    assert (status["state"], status["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")

    aware = new_master(agents=1)
    fid = subscribe(aware, capabilities=[{"type": "PARTITION_AWARE"}])
    (offer,) = offers_by_agent(aware.tick(T0), fid).values()
    launch(aware, fid, offer, [], filters={"refuse_seconds": 0})  # uses the offer up
    (status,) = updates(launch(aware, fid, offer, [task("t", offer["agent_id"]["value"])]))
    assert (status["state"], status["reason"]) == ("TASK_DROPPED", "REASON_INVALID_OFFERS")


def test_launch_group_and_other_operations_are_refused_clearly() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    with pytest.raises(BadCall, match="LAUNCH_GROUP is not supported"):
        master.accept(master.frameworks[fid], {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH_GROUP", "launch_group": {}}]}, T0)
    assert offer["id"]["value"] in master.offers  # nothing changed


def started_task(master: Master, fid: str, task_id: str = "t1", **kw: Any) -> str:
    offers = offers_by_agent(master.tick(T0), fid)
    offer = next(iter(offers.values()))
    launch(master, fid, offer, [task(task_id, offer["agent_id"]["value"], **kw)], filters={"refuse_seconds": 0})
    return offer["agent_id"]["value"]


def report(master: Master, fid: str, state: str, task_id: str = "t1", now: float = T0, **kw: Any) -> Any:
    return master.agent_update(StatusReport(fid, task_id, state, **kw), now)


def test_status_updates_are_resent_until_acknowledged_in_order() -> None:
    master = new_master(agents=1, update_retry=10)
    fid = subscribe(master)
    fw = master.frameworks[fid]
    started_task(master, fid)
    (starting,) = updates(report(master, fid, "TASK_STARTING"))
    assert starting["uuid"] and starting["state"] == "TASK_STARTING" and starting["source"] == "SOURCE_EXECUTOR"
    assert updates(report(master, fid, "TASK_RUNNING", now=T0 + 1)) == []  # queued behind STARTING
    assert master.frameworks[fid].tasks["t1"].state == "TASK_RUNNING"  # the latest state is known at once
    assert updates(master.tick(T0 + 9)) == []
    (resent,) = updates(master.tick(T0 + 10))
    assert resent == starting
    (resent_again,) = updates(master.tick(T0 + 30))  # backs off: 10 s, then 20 s
    assert resent_again["uuid"] == starting["uuid"]
    master.acknowledge(fw, {"task_id": {"value": "t1"}, "agent_id": starting["agent_id"], "uuid": "bogus"}, T0)
    (running,) = updates(master.acknowledge(fw, {"task_id": {"value": "t1"}, "uuid": starting["uuid"]}, T0 + 31))
    assert running["state"] == "TASK_RUNNING" and running["uuid"] != starting["uuid"]
    assert updates(master.tick(T0 + 35)) == []


def test_terminal_update_frees_resources_and_ack_completes_the_task() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    fw = master.frameworks[fid]
    agent_id = started_task(master, fid, cpus=2)
    assert master.used[agent_id].scalar("cpus") == 2
    (running,) = updates(report(master, fid, "TASK_RUNNING"))
    master.acknowledge(fw, {"task_id": {"value": "t1"}, "uuid": running["uuid"]}, T0)
    (failed,) = updates(report(master, fid, "TASK_FAILED", message="Command exited with status 3"))
    assert master.used[agent_id].is_empty()
    assert "t1" in fw.tasks  # until the terminal update is acknowledged
    master.acknowledge(fw, {"task_id": {"value": "t1"}, "uuid": failed["uuid"]}, T0)
    assert "t1" not in fw.tasks and fw.completed[-1].state == "TASK_FAILED"
    assert updates(report(master, fid, "TASK_RUNNING")) == []  # late news of a finished task is dropped


def test_task_killing_is_only_sent_to_frameworks_that_asked_for_it() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    started_task(master, fid)
    assert updates(report(master, fid, "TASK_KILLING")) == []
    aware = new_master(agents=1)
    fid = subscribe(aware, capabilities=[{"type": "TASK_KILLING_STATE"}])
    started_task(aware, fid)
    assert [u["state"] for u in updates(report(aware, fid, "TASK_KILLING"))] == ["TASK_KILLING"]


def test_kill_goes_to_the_agent_with_grace_and_unknown_tasks_are_reconciled() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    fw = master.frameworks[fid]
    started_task(master, fid, kill_policy={"grace_period": {"nanoseconds": 2_000_000_000}})
    assert master.kill(fw, {"task_id": {"value": "t1"}}, T0).kills == [Kill(fid, "t1", 2.0)]
    effects = master.kill(fw, {"task_id": {"value": "ghost"}}, T0)
    assert effects.kills == []
    (status,) = updates(effects)
    assert (status["state"], status["reason"]) == ("TASK_LOST", "REASON_RECONCILIATION")


def test_reconcile_implicit_and_explicit() -> None:
    master = new_master(agents=1)
    fid = subscribe(master, capabilities=[{"type": "PARTITION_AWARE"}])
    fw = master.frameworks[fid]
    agent_id = started_task(master, fid)
    report(master, fid, "TASK_RUNNING")
    (implicit,) = updates(master.reconcile(fw, {}, T0 + 1))
    assert (implicit["state"], implicit["reason"], implicit["source"]) == (
        "TASK_RUNNING", "REASON_RECONCILIATION", "SOURCE_MASTER")
    assert "uuid" not in implicit
    explicit = updates(master.reconcile(fw, {"tasks": [
        {"task_id": {"value": "t1"}}, {"task_id": {"value": "x"}, "agent_id": {"value": agent_id}},
        {"task_id": {"value": "y"}}]}, T0 + 1))
    assert [s["state"] for s in explicit] == ["TASK_RUNNING", "TASK_GONE", "TASK_UNKNOWN"]


def test_failover_keeps_tasks_and_resends_pending_updates() -> None:
    master = new_master(agents=1)
    fid = subscribe(master, failover_timeout=60)
    started_task(master, fid)
    (running,) = updates(report(master, fid, "TASK_RUNNING"))
    assert master.disconnected(fid, "s1", T0 + 1).kills == []
    assert master.offers == {} and not master.frameworks[fid].connected
    with pytest.raises(BadCall) as err:
        master.framework_for_call(fid, "s1")
    assert err.value.status == 403
    assert master.next_deadline() == T0 + 61
    effects = master.subscribe({"framework_info": {"user": "root", "name": "fw", "id": {"value": fid}}},
                               fid, "s2", T0 + 30)
    assert [ev["type"] for _, ev in effects.events] == ["SUBSCRIBED", "UPDATE"]
    assert updates(effects)[0]["uuid"] == running["uuid"]
    assert master.frameworks[fid].tasks["t1"].state == "TASK_RUNNING"
    assert master.tick(T0 + 100).kills == []


def test_failover_timeout_expiry_kills_tasks_and_forgets_the_framework() -> None:
    master = new_master(agents=1)
    fid = subscribe(master, failover_timeout=5)
    agent_id = started_task(master, fid)
    master.disconnected(fid, "s1", T0 + 1)
    assert master.tick(T0 + 5.9).kills == []
    assert master.tick(T0 + 6).kills == [Kill(fid, "t1", None)]
    assert fid not in master.frameworks and master.used[agent_id].is_empty()
    assert master.completed_frameworks[-1].completed[-1].state == "TASK_KILLED"
    with pytest.raises(FrameworkRemoved):
        master.subscribe({"framework_info": {"user": "root", "name": "fw", "id": {"value": fid}}}, fid, "s3", T0)


def test_a_second_subscribe_replaces_the_first_stream() -> None:
    master = new_master(agents=1)
    fid = subscribe(master, failover_timeout=60)
    effects = master.subscribe({"framework_info": {"user": "root", "name": "fw", "id": {"value": fid}}},
                               fid, "s2", T0)
    assert effects.closes == [("s1", "Framework failed over")]
    assert master.disconnected(fid, "s1", T0).kills == [] and master.frameworks[fid].connected


def test_calls_are_checked_like_mesos() -> None:
    master = new_master(agents=1)
    fid = subscribe(master)
    with pytest.raises(BadCall, match="cannot be found") as err:
        master.framework_for_call("other", "s1")
    assert err.value.status == 400
    with pytest.raises(BadCall, match="Mesos-Stream-Id"):
        master.framework_for_call(fid, None)
    with pytest.raises(BadCall, match="didn't match"):
        master.framework_for_call(fid, "s9")
    assert master.framework_for_call(fid, "s1").id == fid
    with pytest.raises(BadCall, match="differs"):
        master.subscribe({"framework_info": {"user": "u", "name": "n"}}, "x", "s5", T0)
    with pytest.raises(BadCall, match="user"):
        master.subscribe({"framework_info": {"name": "n"}}, None, "s5", T0)


def test_teardown_kills_everything_and_closes_the_stream() -> None:
    master = new_master(agents=1)
    fid = subscribe(master, failover_timeout=60)
    started_task(master, fid)
    effects = master.teardown(master.frameworks[fid], T0)
    assert effects.kills == [Kill(fid, "t1", None)] and effects.closes == [("s1", None)]
    assert fid not in master.frameworks and master.offers == {}


def test_offer_timeout_rescinds() -> None:
    master = new_master(agents=1, offer_timeout=2)
    fid = subscribe(master)
    (offer,) = offers_by_agent(master.tick(T0), fid).values()
    effects = master.tick(T0 + 2)
    assert [ev for _, ev in effects.events if ev["type"] == "RESCIND"] == [
        {"type": "RESCIND", "rescind": {"offer_id": offer["id"]}}]


def test_two_frameworks_never_get_the_same_resources() -> None:
    master = new_master(agents=4)
    a, b = subscribe(master, "a", "sa"), subscribe(master, "b", "sb")
    effects = master.tick(T0)
    got_a, got_b = offers_by_agent(effects, a), offers_by_agent(effects, b)
    assert len(got_a) == len(got_b) == 2 and not set(got_a) & set(got_b)


def test_agents_and_urls() -> None:
    assert ZkUrl.parse("zk://127.0.0.1:2181,127.0.0.1:2182/mesos") == ZkUrl("127.0.0.1:2181,127.0.0.1:2182",
                                                                             "/mesos")
    with pytest.raises(ValueError):
        ZkUrl.parse("zk://127.0.0.1:2181")
    assert ip_as_int("127.0.0.1") == 16777343  # what real masters publish for 127.0.0.1
    agent: AgentInfo = make_agents(MID, spans(1))[0]
    assert agent.pid == "slave(1)@127.0.0.2:5051"


# --- how agents turn a TaskInfo into a process or a container ----------------------------------

def agent_launch(command: dict[str, Any], **extra: Any) -> Any:
    from devcluster.mesos.model import Launch

    agent = make_agents(MID, spans(1))[0]
    return Launch("fw-1", parse_task(task("t-1", agent.id, command=command, **extra)), agent, "c-1")


def test_task_environment_adds_what_mesos_adds() -> None:
    from devcluster.mesos.agents import task_environment

    env = task_environment(agent_launch({"value": "x", "environment": {"variables": [
        {"name": "A", "value": "1"}, {"name": "MESOS_TASK_ID", "value": "spoofed"}]}}), "/sandbox")
    assert env == {"A": "1", "MESOS_TASK_ID": "t-1", "MESOS_FRAMEWORK_ID": "fw-1", "MESOS_AGENT_ID": f"{MID}-S0",
                   "MESOS_SLAVE_ID": f"{MID}-S0", "MESOS_SANDBOX": "/sandbox", "MESOS_CONTAINER_NAME": "mesos-c-1"}


def test_commands_are_built_as_mesos_builds_them() -> None:
    from devcluster.mesos.agents import docker_command, host_argv

    shell = agent_launch({"value": "echo hi"})
    assert docker_command(shell) == (["/bin/sh", "-c"], ["echo hi"])
    assert host_argv(shell) == (["/bin/sh", "-c", "echo hi"], None)
    plain = agent_launch({"shell": False, "value": "/bin/echo", "arguments": ["echo", "a b"]})
    assert docker_command(plain) == (None, ["/bin/echo", "echo", "a b"])
    assert host_argv(plain) == (["echo", "a b"], "/bin/echo")
    image_default = agent_launch({"shell": False})
    assert docker_command(image_default) == (None, None)  # the image's own entrypoint and command
