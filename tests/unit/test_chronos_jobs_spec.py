"""Job spec -> Chronos job, the graph checks and order, and the plan against what Chronos has."""

from __future__ import annotations

from typing import Any

import pytest

from chronos_jobs import graph, plan, spec
from chronos_jobs.graph import GraphError
from chronos_jobs.spec import JobSpecError

pytestmark = pytest.mark.unit

SCHEDULED = {"name": "extract", "command": "echo extract", "schedule": "R/2026-01-01T02:00:00Z/P1D"}


def job(name: str, *parents: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "command": f"echo {name}"}
    if parents:
        body["parents"] = list(parents)
    else:
        body["schedule"] = "R/2026-01-01T02:00:00Z/P1D"
    return {**body, **fields}


# --- one spec ------------------------------------------------------------------------------------

def test_shorthands_expand_to_chronos_fields() -> None:
    body = spec.to_chronos({**SCHEDULED, "image": "wharf/busybox:latest", "env": {"STAGE": "prod", "N": 3}})
    assert body["container"] == {"type": "DOCKER", "image": "wharf/busybox:latest", "network": "HOST"}
    assert body["environmentVariables"] == [{"name": "STAGE", "value": "prod"}, {"name": "N", "value": "3"}]
    assert "image" not in body and "env" not in body
    assert spec.endpoint(body) == "iso8601"


def test_chronos_fields_pass_through() -> None:
    given = {"name": "load", "parents": ["extract"], "command": "load.sh", "arguments": ["-v"], "shell": False,
             "epsilon": "PT30M", "retries": 0, "cpus": 0.5, "mem": 64, "disk": 10, "owner": "ops@example.com",
             "constraints": [["rack", "EQUALS", "a"]], "disabled": False, "concurrent": True,
             "container": {"image": "img", "parameters": [{"key": "user", "value": "nobody"}]}}
    body = spec.to_chronos(given)
    assert spec.endpoint(body) == "dependency"
    assert body["container"] == {"type": "DOCKER", "network": "HOST", "image": "img",
                                 "parameters": [{"key": "user", "value": "nobody"}]}
    assert {k: v for k, v in body.items() if k != "container"} == {k: v for k, v in given.items() if k != "container"}


@pytest.mark.parametrize(("schedule", "reason"), [
    ("R-2/2026-01-01T00:00:00Z/P1D", "bad repeat count 'R-2'"),
    ("Rtwice/2026-01-01T00:00:00Z/P1D", "bad repeat count 'Rtwice'"),
    ("R/2026-02-30T00:00:00Z/P1D", "bad start '2026-02-30T00:00:00Z'"),
    ("R/yesterday/P1D", "bad start 'yesterday'"),
    ("R/2026-01-01T00:00:00Z/P1X", "bad duration 'P1X'"),
    ("R/2026-01-01T00:00:00Z/1D", "bad duration '1D'"),
    ("R/2026-01-01T00:00:00Z/PT0S", "the period must be longer than zero"),
    ("every day", "not of the form R[n]/<start>/<period>"),
])
def test_a_bad_schedule_names_the_reason(schedule: str, reason: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        spec.to_chronos({**SCHEDULED, "schedule": schedule})
    assert caught.value.field == "schedule"
    assert reason in caught.value.reason and schedule in caught.value.reason


def test_an_empty_start_means_now_and_is_accepted() -> None:
    assert spec.to_chronos({**SCHEDULED, "schedule": "R//PT1H"})["schedule"] == "R//PT1H"


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"parents": ["a"]}, "parents", "not both"),
    ({"schedule": None}, "schedule", "exactly one of 'schedule'"),
    ({"name": "has space"}, "name", "letters, digits"),
    ({"name": "ünï"}, "name", "letters, digits"),
    ({"name": None}, "name", "is required"),
    ({"retries": -1}, "retries", "whole number"),
    ({"cpus": "lots"}, "cpus", "number >= 0"),
    ({"mem": -1}, "mem", "number >= 0"),
    ({"shell": "yes"}, "shell", "true or false"),
    ({"scheduleTimeZone": "Mars/Olympus"}, "scheduleTimeZone", "unknown scheduleTimeZone 'Mars/Olympus'"),
    ({"epsilon": "soon"}, "epsilon", "bad duration 'soon'"),
    ({"image": "a", "container": {"image": "b"}}, "image", "not both"),
    ({"container": {"type": "DOCKER"}}, "container.image", "is required"),
    ({"env": {"A": "1"}, "environmentVariables": []}, "env", "not both"),
    ({"env": {"WHARF_OWNER": "me"}}, "env.WHARF_OWNER", "set by wharf"),
    ({"command": None}, "command", "is required"),
    ({"constraints": [["rack", "NEAR", "a"]]}, "constraints[0]", "NEAR"),
    ({"comand": "typo"}, "comand", "unknown field"),
])
def test_bad_fields_are_named(fields: dict[str, Any], field: str, reason: str) -> None:
    given = {k: v for k, v in {**SCHEDULED, **fields}.items() if v is not None}
    with pytest.raises(JobSpecError) as caught:
        spec.to_chronos(given)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_dependent_job_checks() -> None:
    with pytest.raises(JobSpecError, match="own parent"):
        spec.to_chronos(job("a", "a"))
    with pytest.raises(JobSpecError, match="at least one"):
        spec.to_chronos({"name": "a", "command": "x", "parents": []})


def test_owner_marker_round_trip() -> None:
    marked = spec.with_owner(spec.to_chronos({**SCHEDULED, "env": {"A": "1"}}), "team")
    assert spec.owner_of(marked) == "team"
    assert marked["environmentVariables"][0] == {"name": "A", "value": "1"}
    assert spec.owner_of(spec.with_owner(marked, "other")) == "other"
    assert spec.owner_of(SCHEDULED) is None


# --- the graph -----------------------------------------------------------------------------------

def test_order_puts_parents_first() -> None:
    jobs = {j["name"]: j for j in (job("report", "load", "extract"), job("load", "transform"),
                                   job("transform", "extract"), job("extract"), job("alone"))}
    assert graph.order(jobs) == ["alone", "extract", "transform", "load", "report"]
    assert graph.descendants(jobs, "transform") == ["load", "report"]


def test_missing_parent_is_refused_unless_chronos_has_it() -> None:
    repo = {"b": job("b", "a")}
    with pytest.raises(GraphError) as caught:
        graph.check(repo, chronos={})
    assert (caught.value.job, caught.value.field) == ("b", "parents")
    assert "parent 'a' does not exist in the repository or in Chronos" in caught.value.reason
    graph.check(repo, chronos={"a": job("a")})
    graph.check(repo, chronos=None)  # offline: parents outside the repository are not checked
    assert graph.external_parents(repo) == ["a"]
    with pytest.raises(GraphError, match="a prune would delete it"):
        graph.check(repo, chronos={"a": job("a")}, removed=["a"])


def test_cycles_are_refused_with_the_path() -> None:
    repo = {"a": job("a", "c"), "b": job("b", "a"), "c": job("c", "b")}
    with pytest.raises(GraphError) as caught:
        graph.check(repo, chronos={})
    assert caught.value.job == "a"
    assert caught.value.reason == "the parents form a cycle: a -> b -> c -> a"


def test_cycles_through_chronos_jobs_are_refused() -> None:
    repo = {"a": job("a", "x")}
    with pytest.raises(GraphError, match="cycle: a -> x -> a"):
        graph.check(repo, chronos={"x": job("x", "a")})


def test_dot_and_text() -> None:
    jobs = {j["name"]: j for j in (job("extract"), job("load", "extract"), job("report", "extract", "load"))}
    dot = graph.dot(jobs)
    assert dot.startswith("digraph jobs {")
    assert '  "extract" -> "load";' in dot and '  "load" -> "report";' in dot and '"extract" -> "report"' in dot
    assert graph.text(jobs) == (
        "extract  R/2026-01-01T02:00:00Z/P1D\n"
        "└── load\n"
        "    └── report  (also after extract)\n"
        "└── report  (also after load)\n"
    )


# --- the plan ------------------------------------------------------------------------------------

def chronos_view(body: dict[str, Any], **filled: Any) -> dict[str, Any]:
    """A job as Chronos lists it after storing `body`: defaults and counters filled in."""
    defaults = {"shell": True, "epsilon": "PT60S", "retries": 2, "cpus": 0.1, "mem": 128.0, "disk": 256.0,
                "owner": "", "ownerName": "", "description": "", "async": False, "successCount": 3,
                "errorCount": 1, "lastSuccess": "2026-01-02T02:00:01.000Z", "lastError": "", "disabled": False,
                "concurrent": False, "softError": False, "errorsSinceLastSuccess": 0, "fetch": [], "uris": [],
                "environmentVariables": [], "arguments": [], "highPriority": False, "runAsUser": "root",
                "constraints": [], "executor": "", "executorFlags": "", "maxCompletionTime": 0}
    view = {**defaults, **body, **filled}
    if "parents" not in body:
        view.setdefault("scheduleTimeZone", "")
    if "container" in body:
        view["container"] = {"volumes": [], "forcePullImage": False, "parameters": [], **body["container"]}
    return view


def test_what_chronos_fills_in_is_not_a_change() -> None:
    desired = spec.with_owner(spec.to_chronos({**SCHEDULED, "image": "img", "cpus": 0.5}), "wharf")
    current = chronos_view(desired, cpus="0.5")
    assert plan.diff_fields(desired, current) == []
    current["container"]["networkInfos"] = []
    assert plan.diff_fields(desired, current) == []
    current["container"]["volumes"] = [{"containerPath": "/data", "hostPath": "/srv", "mode": "RW"}]
    assert plan.diff_fields(desired, current) == ["container"]


def test_advanced_schedules_are_unchanged_but_edits_are_not() -> None:
    want = {"schedule": "R5/2026-01-01T02:00:00Z/P1D"}
    assert plan.same_schedule(want, {"schedule": "R3/2026-01-03T02:00:00.000Z/P1D"})
    assert plan.same_schedule(want, {"schedule": "R0/2026-01-06T02:00:00.000Z/P1D"})
    assert not plan.same_schedule(want, {"schedule": "R4/2026-01-03T02:00:00.000Z/P1D"})  # count edited
    assert not plan.same_schedule(want, {"schedule": "R3/2026-01-03T03:00:00.000Z/P1D"})  # time edited
    assert not plan.same_schedule(want, {"schedule": "R3/2026-01-03T02:00:00.000Z/PT24H"})  # period edited
    assert plan.same_schedule({"schedule": "R/2026-01-01T02:00:00Z/PT1H"},
                              {"schedule": "R/2026-03-01T07:00:00.000Z/PT1H"})
    assert plan.same_schedule({"schedule": "R//PT1H"}, {"schedule": "R/2026-03-01T07:13:02.120Z/PT1H"})
    assert not plan.same_schedule({"schedule": "R/2026-01-01T02:00:00Z/P1D"}, {"parents": ["a"]})


def test_plan_creates_parents_first_updates_changes_and_prunes_only_owned() -> None:
    desired = {name: spec.with_owner(body, "wharf") for name, body in {
        "extract": job("extract"), "load": job("load", "extract"), "report": job("report", "load")}.items()}
    current = {
        "load": chronos_view(desired["load"], command="old"),
        "report": chronos_view(desired["report"]),
        "stale": chronos_view(spec.with_owner(job("stale"), "wharf")),
        "stale-child": chronos_view(spec.with_owner(job("stale-child", "stale"), "wharf")),
        "theirs": chronos_view(job("theirs")),
        "other-owner": chronos_view(spec.with_owner(job("other-owner"), "someone-else")),
    }
    kept = plan.plan(desired, current, owner="wharf")
    assert [(c.action, c.name, c.endpoint, c.fields) for c in kept.changes] == [
        ("create", "extract", "iso8601", ()), ("update", "load", "dependency", ("command",))]
    assert kept.unchanged == ("report",)
    assert kept.unowned == ("other-owner", "theirs")
    assert kept.stale == ("stale", "stale-child")
    pruned = plan.plan(desired, current, owner="wharf", prune=True)
    assert [(c.action, c.name) for c in pruned.changes[2:]] == [("delete", "stale-child"), ("delete", "stale")]
    assert pruned.stale == ()


def test_removing_a_field_from_the_spec_is_a_change_back_to_the_default() -> None:
    desired = spec.to_chronos(SCHEDULED)
    assert plan.diff_fields(desired, chronos_view(desired, retries=5)) == ["retries"]
