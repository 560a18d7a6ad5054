"""The framework's pure parts: submissions, constraints, first-fit matching, TaskInfos, the decision core."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.cli import parse_duration
from framework.constraints import parse_constraint, satisfied
from framework.core import REFUSE_IDLE, Core, backoff
from framework.offers import OfferView, match, task_info
from framework.scheduler import framework_removed
from framework.store import bucket_of, bucket_width, due
from framework.tasks import InvalidTask, Submission, TaskRecord, TaskSpec, check_image, parse_submission

pytestmark = pytest.mark.unit


def offer(n: int, cpus: float = 4, mem: float = 4096, ports: tuple[int, int] = (31000, 31009),
          zone: str = "a") -> dict[str, Any]:
    return {"id": {"value": f"O{n}"}, "agent_id": {"value": f"S{n}"}, "hostname": f"host{n}",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [
                              {"begin": ports[0], "end": ports[1]}]}}],
            "attributes": [{"name": "zone", "type": "TEXT", "text": {"value": zone}}]}


def specs(n: int, **kw: Any) -> list[TaskSpec]:
    return Submission(**{"image": "wharf/busybox:latest", "instances": n, **kw}).tasks("g")


def status(mesos_id: str, state: str, uuid: str | None = "u1", **kw: Any) -> dict[str, Any]:
    out = {"task_id": {"value": mesos_id}, "state": state, "agent_id": {"value": "S0"},
           "source": "SOURCE_EXECUTOR", **kw}
    if uuid:
        out["uuid"] = uuid
    return out


# --- submissions ---------------------------------------------------------------------------

@pytest.mark.parametrize("image", ["wharf/busybox:latest", "busybox", "registry.local:5000/team/app:1.2-rc",
                                   "a/b@sha256:" + "0" * 64, "localhost/x_y.z:tag"])
def test_valid_image_references(image: str) -> None:
    assert check_image(image) == image


@pytest.mark.parametrize("image", ["", "Busybox", "a b", "app:", ":tag", "a//b", "app:-x", "-app", "a/b@sha256:12"])
def test_malformed_image_references_are_refused(image: str) -> None:
    with pytest.raises(InvalidTask, match="not a valid image reference"):
        check_image(image)


@pytest.mark.parametrize(("body", "reason"), [
    ({"image": "x", "cpus": 0}, "--cpus: 0 must be at least"),
    ({"image": "x", "mem": "lots"}, "--mem: 'lots' is not a number"),
    ({"image": "x", "instances": 1.5}, "--instances: 1.5 is not a whole number"),
    ({"image": "x", "retries": -1}, "--retries: -1 must be at least 0"),
    ({"image": "x", "constraints": ["zone:NEAR:a"]}, "unknown operator 'NEAR'"),
    ({"image": "x", "constraints": ["hostname:UNIQUE:x"]}, "UNIQUE takes no value"),
    ({"image": "x", "constraints": ["zone:LIKE:(a"]}, "is not a regular expression"),
    ({"image": "x", "constraints": ["zone:MAX_PER:two"]}, "MAX_PER takes a positive whole number"),
    ({"image": "x", "env": {"1BAD": "v"}}, "--env: '1BAD' is not a valid variable name"),
    ({"image": "x", "network": "overlay"}, "--network: 'OVERLAY' is not one of HOST, BRIDGE, NONE"),
    ({"image": "x", "ports": [70000]}, "--port: 70000 is not between 1 and 65535"),
])
def test_bad_submissions_name_the_field_and_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidTask) as err:
        parse_submission(body)
    assert reason in str(err.value)


def test_a_submission_becomes_numbered_tasks_that_round_trip_through_json() -> None:
    sub = parse_submission({"image": "wharf/busybox:latest", "cmd": "echo hi", "instances": 3, "cpus": 0.5,
                            "constraints": ["hostname:UNIQUE", "zone:group_by:3"], "env": {"A": "1"},
                            "labels": {"SERVICE_NAME": "batch"}, "retries": 2, "ports": [8080]})
    tasks = sub.tasks("g1")
    assert [t.id for t in tasks] == ["g1-0", "g1-1", "g1-2"]
    assert tasks[0].constraints[1].text == "zone:GROUP_BY:3"
    record = TaskRecord(tasks[0], submitted=1.0).moved("QUEUED", 1.0, "submitted")
    assert TaskRecord.from_json(record.to_json()) == record


# --- constraints ---------------------------------------------------------------------------

def test_constraint_operators() -> None:
    attrs = {"zone": "a", "rack": "r1"}
    assert satisfied(parse_constraint("hostname:UNIQUE"), "h1", attrs, ["h2"])
    assert not satisfied(parse_constraint("hostname:UNIQUE"), "h1", attrs, ["h1"])
    assert satisfied(parse_constraint("zone:CLUSTER:a"), "h1", attrs, [])
    assert not satisfied(parse_constraint("zone:CLUSTER:b"), "h1", attrs, [])
    assert satisfied(parse_constraint("rack:LIKE:r[0-9]"), "h1", attrs, [])
    assert not satisfied(parse_constraint("rack:LIKE:r"), "h1", attrs, [])  # a full match is needed
    assert not satisfied(parse_constraint("gpu:LIKE:.*"), "h1", attrs, [])  # no such attribute
    assert satisfied(parse_constraint("gpu:UNLIKE:yes"), "h1", attrs, [])
    assert not satisfied(parse_constraint("zone:UNLIKE:a|b"), "h1", attrs, [])
    assert satisfied(parse_constraint("zone:MAX_PER:2"), "h1", attrs, ["a", "b"])
    assert not satisfied(parse_constraint("zone:MAX_PER:2"), "h1", attrs, ["a", "a"])
    assert not satisfied(parse_constraint("zone:GROUP_BY"), "h1", attrs, ["a", "a", "b"])  # a already has more
    assert satisfied(parse_constraint("zone:GROUP_BY"), "h1", attrs, ["a", "b", "b"])
    assert not satisfied(parse_constraint("zone:GROUP_BY:3"), "h1", attrs, ["a", "b"])  # c still has none


# --- matching ------------------------------------------------------------------------------

def queued(tasks: list[TaskSpec]) -> list[TaskRecord]:
    return [TaskRecord(t) for t in tasks]


def test_first_fit_fills_offers_in_order_within_their_resources() -> None:
    offers = [OfferView.from_offer(offer(0, cpus=1)), OfferView.from_offer(offer(1, cpus=4))]
    result = match(offers, queued(specs(6, cpus=0.5)), {})
    assert [len(m.tasks) for m in result] == [2, 4]


def test_unique_hostname_and_ports() -> None:
    offers = [OfferView.from_offer(offer(n, ports=(31000 + 10 * n, 31001 + 10 * n))) for n in range(2)]
    result = match(offers, queued(specs(3, ports=(80, 81), constraints=(parse_constraint("hostname:UNIQUE"),))), {})
    assert [[ports for _, ports in m.tasks] for m in result] == [[(31000, 31001)], [(31010, 31011)]]


def test_placements_of_launched_tasks_count() -> None:
    offers = [OfferView.from_offer(offer(0))]
    tasks = queued(specs(2, constraints=(parse_constraint("hostname:MAX_PER:2"),)))
    assert len(match(offers, tasks, {"g": [("host0", {})]})[0].tasks) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 4), st.floats(16, 4096)), min_size=1, max_size=30),
       st.lists(st.tuples(st.floats(0, 8), st.floats(0, 8192)), min_size=1, max_size=6),
       st.integers(1, 4))
def test_matching_never_overcommits_an_offer_nor_breaks_max_per(
        tasks: list[tuple[float, float]], agents: list[tuple[float, float]], per: int) -> None:
    constraint = parse_constraint(f"hostname:MAX_PER:{per}")
    records = [TaskRecord(TaskSpec(f"g-{n}", "g", "img", cpus=c, mem=m, constraints=(constraint,)))
               for n, (c, m) in enumerate(tasks)]
    offers = [OfferView.from_offer(offer(n, cpus=c, mem=m)) for n, (c, m) in enumerate(agents)]
    taken = set()
    for m in match(offers, records, {}):
        assert sum(r.spec.cpus for r, _ in m.tasks) <= m.offer.cpus + 1e-6
        assert sum(r.spec.mem for r, _ in m.tasks) <= m.offer.mem + 1e-6
        assert len(m.tasks) <= per
        taken |= {r.id for r, _ in m.tasks}
    assert len(taken) == sum(len(m.tasks) for m in match(offers, records, {}))  # no task twice


def test_task_info_is_a_docker_container_with_labels_env_and_port_mappings() -> None:
    spec = Submission("wharf/busybox:latest", "httpd -f", network="BRIDGE", ports=(80,), env=(("A", "1"),),
                      labels=(("SERVICE_NAME", "web"),), parameters=(("ulimit", "nofile=1024"),)).tasks("g")[0]
    record = TaskRecord(spec, launches=1)
    info = task_info(record, OfferView.from_offer(offer(0)), (31005,))
    assert info["task_id"] == {"value": "g-0.1"} and info["agent_id"] == {"value": "S0"}
    docker = info["container"]["docker"]
    assert info["container"]["type"] == "DOCKER" and docker["image"] == "wharf/busybox:latest"
    assert docker["port_mappings"] == [{"host_port": 31005, "container_port": 80, "protocol": "tcp"}]
    assert docker["parameters"] == [{"key": "ulimit", "value": "nofile=1024"}]
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["A"] == "1" and env["PORT0"] == "31005" and env["WHARF_TASK_ID"] == "g-0"
    labels = {lab["key"]: lab["value"] for lab in info["labels"]["labels"]}
    assert labels["SERVICE_NAME"] == "web" and labels["wharf.framework.task"] == "g-0"
    assert {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31005, "end": 31005}]}} in info[
        "resources"]


# --- the core ------------------------------------------------------------------------------

def launched(core: Core, n: int = 1, now: float = 10.0) -> list[dict[str, Any]]:
    core.submit(specs(n), now)
    core.subscribed_now(now)
    effects = core.offers([offer(0)], now)
    assert effects.suppress  # the queue is empty now
    return [info for _, infos in effects.launches for info in infos]


def test_nothing_launches_before_reconciliation_answers() -> None:
    core = Core([TaskRecord(specs(1)[0], state="RUNNING", launches=1, agent_id="S0", hostname="host0"),
                 TaskRecord(specs(2)[1], state="QUEUED")])
    effects = core.subscribed_now(0)
    assert effects.reconcile == [("g-0.1", "S0")]
    declined = core.offers([offer(0)], 1)
    assert declined.declines == ["O0"] and not declined.launches
    core.update(status("g-0.1", "TASK_RUNNING", uuid=None, source="SOURCE_MASTER", reason="REASON_RECONCILIATION"), 2)
    assert core.reconciled
    assert [i["task_id"]["value"] for _, infos in core.offers([offer(0)], 3).launches for i in infos] == ["g-1.1"]


def test_updates_are_stored_before_they_are_acknowledged() -> None:
    core = Core()
    [info] = launched(core)
    effects = core.update(status(info["task_id"]["value"], "TASK_RUNNING"), 11)
    assert effects.writes["g-0"].state == "RUNNING" and effects.acks[0]["uuid"] == "u1"
    assert effects.to_running == [1.0]
    done = core.update(status("g-0.1", "TASK_FINISHED", uuid="u2"), 12)
    assert done.writes["g-0"].state == "FINISHED" and done.acks[0]["uuid"] == "u2"
    assert core.suppressed  # nothing queued since the launch: offers were suppressed then


def test_a_failed_task_is_retried_after_backoff_then_failed() -> None:
    core = Core()
    core.submit([TaskSpec("g-0", "g", "img", retries=1)], 0)
    core.subscribed_now(0)
    core.offers([offer(0)], 0)
    retry = core.update(status("g-0.1", "TASK_FAILED", message="exited with status 3"), 1)
    record = retry.writes["g-0"]
    assert record.state == "QUEUED" and record.not_before == 1 + backoff(1) and record.failures == 1
    assert not core.offers([offer(0)], 2).launches  # still backing off
    again = core.offers([offer(0)], 1 + backoff(1))
    assert [i["task_id"]["value"] for _, infos in again.launches for i in infos] == ["g-0.2"]
    final = core.update(status("g-0.2", "TASK_FAILED"), 5).writes["g-0"]
    assert final.state == "FAILED" and final.failures == 2
    assert backoff(1) < backoff(2) < backoff(3)


def test_a_launch_the_master_never_had_is_queued_again_without_counting() -> None:
    core = Core([TaskRecord(specs(1)[0], state="STAGING", launches=1, agent_id="S0", hostname="host0")])
    core.subscribed_now(0)
    lost = status("g-0.1", "TASK_LOST", uuid=None, source="SOURCE_MASTER", reason="REASON_RECONCILIATION")
    record = core.update(lost, 1).writes["g-0"]
    assert record.state == "QUEUED" and record.failures == 0
    relaunch = core.offers([offer(0)], 2)
    assert [i["task_id"]["value"] for _, infos in relaunch.launches for i in infos] == ["g-0.2"]


def test_updates_of_an_earlier_attempt_are_acknowledged_and_ignored() -> None:
    core = Core([TaskRecord(specs(1)[0], state="RUNNING", launches=2, agent_id="S0", hostname="host0", seen=True)])
    core.subscribed_now(0)
    effects = core.update(status("g-0.1", "TASK_FAILED"), 1)
    assert not effects.writes and effects.acks


def test_kill_queued_and_running_tasks() -> None:
    core = Core()
    launched(core, 1)
    core.submit([TaskSpec("h-0", "h", "img", cpus=100)], 11)  # never fits
    assert core.kill("h-0", 12).writes["h-0"].state == "KILLED"
    effects = core.kill("g-0", 12)
    assert effects.kills == [("g-0.1", "S0")] and effects.writes["g-0"].kill_requested
    assert core.update(status("g-0.1", "TASK_KILLED"), 13).writes["g-0"].state == "KILLED"


def test_idle_declines_with_a_long_filter_and_submit_revives() -> None:
    core = Core()
    core.subscribed_now(0)
    effects = core.offers([offer(0)], 1)
    assert effects.declines == ["O0"] and effects.refuse_seconds == REFUSE_IDLE and effects.suppress
    assert core.submit(specs(1), 2).revive


# --- removed frameworks, retention of finished tasks ------------------------------------------

def test_only_the_masters_removal_error_makes_the_framework_id_useless() -> None:
    assert framework_removed("Framework has been removed")
    assert not framework_removed("Framework failed over")  # another scheduler took over: keep the id
    assert not framework_removed("Framework is not subscribed")


@pytest.mark.parametrize(("text", "seconds"), [("86400", 86400), ("90s", 90), ("15m", 900), ("24h", 86400),
                                               ("7d", 604800), ("1w", 604800), ("1h30m", 5400), ("0.5", 0.5),
                                               (" 2D ", 172800), ("0", 0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", "1x", "h", "1h 30m", "1h30", "nan", "inf", "5s5"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@settings(max_examples=200, deadline=None)
@given(st.floats(1.6e9, 2.5e9), st.sampled_from([0.0, 0.5, 1.0, 60.0, 3600.0, 86400.0, 7 * 86400.0]))
def test_a_bucket_is_due_only_once_every_task_in_it_is_past_its_retention(ended: float, retention: float) -> None:
    bucket = bucket_of(ended, retention)
    assert ended + retention <= int(bucket) < ended + retention + bucket_width(retention)
    assert due([bucket], ended + retention - 0.001) == []
    assert due([bucket], int(bucket)) == [bucket]


def test_due_buckets_come_oldest_first_and_others_are_ignored() -> None:
    assert due(["900", "1000", "80", "lock", "2000"], 1000) == ["80", "900", "1000"]
    assert bucket_width(86400) == 3600 and bucket_width(60) == 2 and bucket_width(0) == 1


def test_finished_tasks_are_forgotten_after_the_retention_and_remembered_within_it() -> None:
    core = Core()
    [info] = launched(core)
    core.update(status(info["task_id"]["value"], "TASK_FINISHED"), 20)
    core.submit([TaskSpec("h-0", "h", "img", cpus=100)], 21)  # never fits: stays queued, never forgotten
    assert core.tasks["g-0"].ended_at == 20 and core.tasks["h-0"].ended_at is None
    assert core.forget_finished(now=119.9, retention=100) == 0
    assert core.forget_finished(now=120, retention=100) == 1
    assert list(core.tasks) == ["h-0"]
    old = TaskRecord(TaskSpec("f-0", "f", "img"), submitted=1).moved("FAILED", 5, "exited")
    expired = TaskRecord(TaskSpec("f-1", "f", "img"), submitted=1).moved("FAILED", 4, "exited")
    live = TaskRecord(TaskSpec("f-2", "f", "img"), submitted=1).moved("QUEUED", 4, "submitted")
    core.remember([old, expired, live], now=104.5, retention=100)
    assert list(core.tasks) == ["f-0", "h-0"]  # the earlier finished first; the expired and live ones not taken
