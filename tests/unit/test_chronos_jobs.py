"""Unit tests of Chronos jobs: reading and validating bodies, the `/jobs` shape, and the dependency
graph (missing parents, cycles, when a dependent job runs, `/graph/csv`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from devcluster.chronos import jobs as J
from devcluster.chronos.jobs import Job, JobError
from wharf.contracts import chronos_schedule as sched

pytestmark = pytest.mark.unit

SCHEDULED = {"name": "nightly", "command": "run-report", "schedule": "R/2026-01-01T02:00:00Z/P1D"}
DEPENDENT = {"name": "publish", "command": "publish-report", "parents": ["nightly"]}


def body(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    merged = {**base, **changes}
    return {key: value for key, value in merged.items() if value is not ...}


def refused(data: Any, kind: str = "iso8601") -> JobError:
    with pytest.raises(JobError) as caught:
        J.parse_job(data, kind)
    assert "\n" not in str(caught.value)
    return caught.value


def job(name: str, *parents: str, **fields: Any) -> Job:
    if parents:
        return Job(name=name, command="true", parents=parents, **fields)
    return Job(name=name, command="true", schedule="R/2026-01-01T00:00:00Z/PT1H", **fields)


def graph(*members: Job) -> dict[str, Job]:
    return {member.name: member for member in members}


# --- reading -------------------------------------------------------------------------------------

def test_a_minimal_scheduled_job_takes_chronos_defaults() -> None:
    parsed = J.parse_job(SCHEDULED, "iso8601")
    assert parsed == Job(name="nightly", command="run-report", schedule="R/2026-01-01T02:00:00Z/P1D")
    assert (parsed.epsilon, parsed.retries, parsed.shell, parsed.run_as_user) == ("PT60S", 2, True, "root")
    assert (parsed.cpus, parsed.mem, parsed.disk) == (0.1, 128.0, 256.0)
    assert parsed.kind == "iso8601"


def test_a_dependent_job() -> None:
    parsed = J.parse_job(DEPENDENT, "dependency")
    assert parsed.parents == ("nightly",) and parsed.schedule is None and parsed.kind == "dependency"


def test_a_full_job_keeps_every_field() -> None:
    data = {
        **SCHEDULED, "scheduleTimeZone": "Europe/Berlin", "epsilon": "PT30M", "retries": 5,
        "owner": "ops@example.com", "ownerName": "Ops", "description": "the nightly report",
        "async": True, "cpus": 0.5, "mem": 512, "disk": 1024, "disabled": True, "concurrent": True,
        "shell": False, "arguments": ["-v"], "environmentVariables": [{"name": "A", "value": "1"}],
        "fetch": [{"uri": "https://example.com/x.tgz", "cache": True}],
        "constraints": [["rack", "EQUALS", "r1"], ["zone", "LIKE", "eu-.*"]],
        "container": {"type": "docker", "image": "busybox", "network": "BRIDGE", "forcePullImage": "true",
                      "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "ro"}],
                      "parameters": [{"key": "memory-swap", "value": "1g"}]},
        "runAsUser": "nobody", "softError": True, "dataProcessingJobType": True, "highPriority": True,
        "executor": "custom", "executorFlags": "-x", "taskInfoData": "{}", "maxCompletionTime": 600,
        "successCount": 3, "errorCount": 1, "errorsSinceLastSuccess": 0,
        "lastSuccess": "2026-01-02T02:00:05.000Z", "lastError": "2026-01-01T02:00:09.000Z",
    }
    parsed = J.parse_job(data, "iso8601")
    assert parsed.container == J.Container(
        image="busybox", type="DOCKER", network="BRIDGE", force_pull_image=True,
        volumes=(J.Volume("/data", "/srv", "RO"),), parameters=(J.KeyValue("memory-swap", "1g"),))
    assert parsed.fetch == (J.Fetch("https://example.com/x.tgz", cache=True),)
    assert parsed.constraints == (J.Constraint("rack", "EQUALS", "r1"), J.Constraint("zone", "LIKE", "eu-.*"))
    assert parsed.environment_variables == (J.EnvironmentVariable("A", "1"),)
    assert (parsed.async_, parsed.concurrent, parsed.soft_error, parsed.max_completion_time) == (True, True, True, 600)
    assert J.parse_job(J.to_json(parsed), "iso8601") == parsed


@pytest.mark.parametrize(("field", "given", "expected"), [
    ("cpus", "0.5", 0.5), ("mem", "512", 512.0), ("cpus", 0, 0.1), ("disk", 0, 256.0), ("mem", 0.0, 128.0),
    ("retries", "3", 3), ("retries", 0, 0), ("shell", "false", False), ("async", "TRUE", True),
    ("epsilon", "PT1H", "PT1H"), ("epsilon", "P0DT15M", "PT15M"), ("runAsUser", "", "root"),
])
def test_values_are_read_as_chronos_reads_them(field: str, given: Any, expected: Any) -> None:
    parsed = J.to_json(J.parse_job({**SCHEDULED, field: given}, "iso8601"))
    assert parsed[field] == expected


@pytest.mark.parametrize("name", ["a", "SAMPLE_JOB1", "db_export-airbed_hostings", "v1.2", "_-."])
def test_valid_names(name: str) -> None:
    assert J.parse_job({**SCHEDULED, "name": name}, "iso8601").name == name


@pytest.mark.parametrize("name", ["", "two words", "tab\tname", "hash#tag", "slash/name", "café", "a:b"])
def test_invalid_names(name: str) -> None:
    error = refused({**SCHEDULED, "name": name})
    assert error.field == "name"
    assert "is invalid" in str(error)


def test_missing_name() -> None:
    error = refused({"command": "x", "schedule": SCHEDULED["schedule"]})
    assert str(error) == "job: field 'name' is required"
    assert (error.job, error.field) == (None, "name")


def test_a_bad_schedule_names_the_job_and_the_schedule() -> None:
    error = refused({**SCHEDULED, "schedule": "R/2026-13-01T00:00:00Z/PT1H"})
    assert str(error) == ("job 'nightly': schedule 'R/2026-13-01T00:00:00Z/PT1H': "
                          "bad start '2026-13-01T00:00:00Z': not a valid ISO 8601 date-time")
    assert (error.job, error.field) == ("nightly", "schedule")


@pytest.mark.parametrize(("data", "kind", "field", "message"), [
    (body(SCHEDULED, schedule=...), "iso8601", "schedule", "field 'schedule' is required"),
    (body(SCHEDULED, parents=["x"]), "iso8601", "parents", "belongs to a dependent job"),
    (body(DEPENDENT, schedule="R/2026-01-01T00:00:00Z/P1D"), "dependency", "schedule", "belongs to a scheduled job"),
    (body(DEPENDENT, parents=[]), "dependency", "parents", "at least one parent"),
    (body(DEPENDENT, parents=...), "dependency", "parents", "at least one parent"),
    (body(DEPENDENT, parents="nightly"), "dependency", "parents", "must be an array"),
    (body(DEPENDENT, parents=[1]), "dependency", "parents", "'parents[0]' must be a string"),
    (body(SCHEDULED, command=...), "iso8601", "command", "'command' is required"),
    (body(SCHEDULED, scheduleTimeZone="Nowhere/Town"), "iso8601", "schedule", "unknown scheduleTimeZone"),
    (body(SCHEDULED, epsilon="15 minutes"), "iso8601", "epsilon", "epsilon '15 minutes' is not an ISO 8601 period"),
    (body(SCHEDULED, cpus="lots"), "iso8601", "cpus", "'cpus' must be a non-negative number"),
    (body(SCHEDULED, mem=-1), "iso8601", "mem", "'mem' must be a non-negative number"),
    (body(SCHEDULED, cpus=True), "iso8601", "cpus", "'cpus' must be a non-negative number"),
    (body(SCHEDULED, retries=1.5), "iso8601", "retries", "non-negative integer"),
    (body(SCHEDULED, shell="yes"), "iso8601", "shell", "'shell' must be a boolean"),
    (body(SCHEDULED, owner=7), "iso8601", "owner", "'owner' must be a string"),
    (body(SCHEDULED, lastSuccess="yesterday"), "iso8601", "lastSuccess", "must be an ISO 8601 date-time"),
    (body(SCHEDULED, uris=["a"], fetch=[{"uri": "b"}]), "iso8601", "fetch", "not both"),
    (body(SCHEDULED, constraints=[["rack", "UNIQUE", "x"]]), "iso8601", "constraints[0]", "unknown operator 'UNIQUE'"),
    (body(SCHEDULED, constraints=[["rack", "EQUALS"]]), "iso8601", "constraints[0]", "[attribute, operator, value]"),
    (body(SCHEDULED, environmentVariables=[{"name": "A"}]), "iso8601", "environmentVariables[0].value", "required"),
    (body(SCHEDULED, container={"type": "DOCKER"}), "iso8601", "container.image", "'container.image' is required"),
    (body(SCHEDULED, container={"image": "x", "type": "rkt"}), "iso8601", "container.type", "DOCKER, MESOS"),
    (body(SCHEDULED, container={"image": "x", "network": "bridge"}), "iso8601", "container.network", "BRIDGE"),
    (body(SCHEDULED, container={"image": "x", "volumes": [{"hostPath": "/a"}]}), "iso8601",
     "container.volumes[0].containerPath", "required"),
    (body(SCHEDULED, container={"image": "x", "volumes": [{"containerPath": "/a", "mode": "rx"}]}), "iso8601",
     "container.volumes[0].mode", "RW, RO"),
    (body(SCHEDULED, container="busybox"), "iso8601", "container", "must be an object"),
])
def test_refusals_name_the_job_and_the_field(data: dict[str, Any], kind: str, field: str, message: str) -> None:
    error = refused(data, kind)
    assert error.field == field
    assert message in str(error)
    assert str(error).startswith(f"job '{data['name']}': ")


def test_a_body_that_is_not_an_object() -> None:
    assert refused(["nightly"]).field == "job"


def test_an_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        J.parse_job(SCHEDULED, "cron")


def test_a_container_job_needs_no_command() -> None:
    parsed = J.parse_job(body(SCHEDULED, command=..., container={"image": "busybox"}), "iso8601")
    assert parsed.command == "" and parsed.container == J.Container(image="busybox")


def test_unknown_fields_are_dropped_as_chronos_drops_them() -> None:
    assert "dataJob" not in J.to_json(J.parse_job({**SCHEDULED, "dataJob": True}, "iso8601"))


def test_parents_keep_their_order_without_duplicates() -> None:
    parsed = J.parse_job({**DEPENDENT, "parents": ["b", "a", "b"]}, "dependency")
    assert parsed.parents == ("b", "a")


def test_an_empty_start_is_pinned_to_now_when_a_clock_is_given() -> None:
    data = {**SCHEDULED, "schedule": "R1//PT24H"}
    assert J.parse_job(data, "iso8601").schedule == "R1//PT24H"
    pinned = J.parse_job(data, "iso8601", now=datetime(2026, 5, 1, 12, tzinfo=UTC))
    assert pinned.schedule == "R1/2026-05-01T12:00:00.000Z/PT24H"
    assert J.job_schedule(pinned).start == datetime(2026, 5, 1, 12, tzinfo=UTC)


def test_job_schedule_reads_the_time_zone() -> None:
    parsed = J.parse_job({**SCHEDULED, "scheduleTimeZone": "PST"}, "iso8601")
    assert J.job_schedule(parsed).start == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(JobError, match="no schedule"):
        J.job_schedule(J.parse_job(DEPENDENT, "dependency"))


# --- rendering -----------------------------------------------------------------------------------

def test_to_json_has_chronos_field_names_in_order() -> None:
    rendered = J.to_json(J.parse_job(SCHEDULED, "iso8601"))
    assert list(rendered) == [
        "name", "command", "shell", "epsilon", "executor", "executorFlags", "taskInfoData", "retries",
        "owner", "ownerName", "description", "async", "successCount", "errorCount", "lastSuccess",
        "lastError", "cpus", "disk", "mem", "disabled", "concurrent", "softError", "dataProcessingJobType",
        "errorsSinceLastSuccess", "maxCompletionTime", "fetch", "uris", "environmentVariables", "arguments",
        "highPriority", "runAsUser", "constraints", "schedule", "scheduleTimeZone"]
    assert rendered["schedule"] == SCHEDULED["schedule"]  # stored as written until the first run


def test_a_dependent_job_renders_parents_and_no_schedule() -> None:
    rendered = J.to_json(J.parse_job(DEPENDENT, "dependency"))
    assert rendered["parents"] == ["nightly"]
    assert "schedule" not in rendered and "scheduleTimeZone" not in rendered


def test_a_container_renders_like_chronos() -> None:
    rendered = J.to_json(J.parse_job({**SCHEDULED, "container": {"image": "busybox"}}, "iso8601"))
    assert rendered["container"] == {"type": "DOCKER", "image": "busybox", "network": "HOST", "volumes": [],
                                     "forcePullImage": False, "parameters": []}


# --- the dependency graph ------------------------------------------------------------------------

def test_children_of_are_sorted() -> None:
    jobs = graph(job("a"), job("c", "a"), job("b", "a"), job("d", "b"))
    assert J.children_of(jobs, "a") == ("b", "c")
    assert J.children_of(jobs, "d") == ()


def test_missing_parents_are_named() -> None:
    with pytest.raises(JobError) as caught:
        J.check_dependencies(graph(job("a")), job("report", "a", "b", "c"))
    assert str(caught.value) == "job 'report': unknown parents 'b', 'c'"
    assert caught.value.field == "parents"
    with pytest.raises(JobError, match="unknown parent 'x'$"):
        J.check_dependencies({}, job("report", "x"))


def test_known_parents_pass() -> None:
    J.check_dependencies(graph(job("a"), job("b", "a")), job("c", "a", "b"))


def test_the_two_checks_apart() -> None:
    J.check_parents(graph(job("a")), job("a", "a"))          # itself is not missing...
    with pytest.raises(JobError, match="cycle: a depends on a"):
        J.check_acyclic(graph(job("a")), job("a", "a"))      # ...but a cycle
    J.check_acyclic({}, job("b", "unknown"))                # unknown parents are check_parents' business


@pytest.mark.parametrize(("jobs", "new", "cycle"), [
    (graph(job("a")), job("a", "a"), "a depends on a"),
    (graph(job("a"), job("b", "a")), job("a", "b"), "a depends on b depends on a"),
    (graph(job("a"), job("b", "a"), job("c", "b")), job("a", "c"), "a depends on c depends on b depends on a"),
    (graph(job("r"), job("a", "r"), job("b", "a")), job("a", "r", "b"), "a depends on b depends on a"),
])
def test_cycles_are_refused(jobs: dict[str, Job], new: Job, cycle: str) -> None:
    with pytest.raises(JobError) as caught:
        J.check_dependencies(jobs, new)
    assert str(caught.value) == f"job '{new.name}': parents would form a cycle: {cycle}"


def test_a_diamond_is_not_a_cycle() -> None:
    J.check_dependencies(graph(job("a"), job("b", "a"), job("c", "a")), job("d", "b", "c"))


def test_a_child_with_one_parent_runs_after_every_finish() -> None:
    jobs = graph(job("a"), job("b", "a"))
    ready, counts = J.ready_dependents(jobs, "a", {})
    assert ready == ("b",)
    assert J.ready_dependents(jobs, "a", counts)[0] == ("b",)


def test_a_child_with_two_parents_runs_once_both_have_finished() -> None:
    jobs = graph(job("a"), job("b"), job("c", "a", "b"))
    ready, counts = J.ready_dependents(jobs, "a", {})
    assert ready == ()
    ready, counts = J.ready_dependents(jobs, "a", counts)   # a again: still waiting for b
    assert ready == ()
    ready, counts = J.ready_dependents(jobs, "b", counts)   # b catches up with the slower edge
    assert ready == ("c",)
    counts = J.dependent_started(jobs, "c", counts)          # c's task starts: its edges reset
    assert counts == {("a", "c"): 0, ("b", "c"): 0}
    assert J.ready_dependents(jobs, "b", counts)[0] == ()


def test_chronos_counts_rounds_when_the_child_has_not_started() -> None:
    # Without a start in between, each full round of parent finishes triggers the child again.
    jobs = graph(job("a"), job("b"), job("c", "a", "b"))
    counts: dict[tuple[str, str], int] = {}
    triggered = []
    for finished in ["a", "b", "a", "b"]:
        ready, counts = J.ready_dependents(jobs, finished, counts)
        triggered.append(ready)
    assert triggered == [(), ("c",), (), ("c",)]


def test_a_disabled_child_is_counted_but_not_run() -> None:
    jobs = graph(job("a"), job("b", "a", disabled=True), job("c", "a"))
    assert J.ready_dependents(jobs, "a", {})[0] == ("c",)


def test_without_job_drops_it_from_children_with_other_parents() -> None:
    jobs = graph(job("a"), job("b"), job("c", "a", "b"))
    remaining = J.without_job(jobs, "a")
    assert set(remaining) == {"b", "c"} and remaining["c"].parents == ("b",)


def test_without_job_refuses_to_orphan_a_child() -> None:
    with pytest.raises(JobError, match="cannot delete: 'b' depends only on it"):
        J.without_job(graph(job("a"), job("b", "a")), "a")


@pytest.mark.parametrize(("success", "error", "state"), [
    ("", "", "fresh"),
    ("2026-01-01T00:00:00.000Z", "", "success"),
    ("", "2026-01-01T00:00:00.000Z", "failure"),
    ("2026-01-02T00:00:00.000Z", "2026-01-01T00:00:00.000Z", "success"),
    ("2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z", "failure"),
    ("2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", "failure"),   # a tie is not a success
    ("2026-01-01T01:00:00.000+02:00", "2026-01-01T00:00:00.000Z", "failure"),  # compared as instants
])
def test_last_state(success: str, error: str, state: str) -> None:
    assert J.last_state(job("a", last_success=success, last_error=error)) == state


def test_graph_csv() -> None:
    jobs = graph(job("nightly", last_success="2026-01-01T02:00:09.000Z"),
                 job("cleanup", last_error="2026-01-01T03:00:00.000Z"),
                 job("publish", "nightly", "cleanup"), job("archive", "publish"))
    csv = J.graph_csv(jobs, {"publish": "running", "archive": "queued"}, running={"publish": 2})
    assert csv == ("node,archive,fresh,queued\n"
                   "node,cleanup,failure,idle\n"
                   "node,nightly,success,idle\n"
                   "node,publish,fresh,2 running\n"
                   "link,publish,archive\n"
                   "link,cleanup,publish\n"
                   "link,nightly,publish\n")
    assert J.graph_csv({}, {}) == ""
    assert "node,publish,fresh,1 running\n" in J.graph_csv(jobs, {"publish": "running"})


def test_graph_csv_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="status of job 'a'"):
        J.graph_csv(graph(job("a")), {"a": "sleeping"})


def test_a_job_updated_from_a_run_keeps_rendering() -> None:
    parsed = J.parse_job(SCHEDULED, "iso8601")
    after = sched.advance(J.job_schedule(parsed), datetime(2026, 1, 1, 2, 0, 1, tzinfo=UTC))
    assert after is not None
    rewritten = replace(parsed, schedule=sched.format(after), success_count=1)
    assert J.to_json(rewritten)["schedule"] == "R/2026-01-02T02:00:00.000Z/P1D"
