"""The Chronos stand-in's pure scheduler: due runs, retries, dependents, offers -> TaskInfos."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devcluster.chronos import jobs as J
from devcluster.chronos.launch import plan_launches
from devcluster.chronos.state import ChronosState, Run, RunnerError, parse_task_id

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def scheduled(name: str, schedule: str, **extra: Any) -> J.Job:
    return J.parse_job({"name": name, "command": "echo hi", "schedule": schedule, **extra}, "iso8601")


def dependent(name: str, *parents: str, **extra: Any) -> J.Job:
    return J.parse_job({"name": name, "command": "echo hi", "parents": list(parents), **extra}, "dependency")


def state_of(*jobs: J.Job) -> ChronosState:
    state = ChronosState()
    for job in jobs:
        state.put(job)
    return state


def offer(cpus: float = 4, mem: float = 4096, disk: float = 10240, rack: str = "rack-1") -> dict[str, Any]:
    return {"id": {"value": f"O-{rack}"}, "agent_id": {"value": "S0"}, "hostname": "127.0.1.1",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
                          {"name": "disk", "type": "SCALAR", "scalar": {"value": disk}},
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 2}]}}],
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": rack}}]}


def launch_all(state: ChronosState) -> list[Run]:
    runs = [run for _, chosen in plan_launches(state, [offer()]) for run, _ in chosen]
    for run in runs:
        state.launched(run)
    return runs


def test_task_ids_have_chronos_form() -> None:
    run = Run("backup", T0, 2, "a b;c")
    assert run.task_id == f"ct:{int(T0.timestamp() * 1000)}:2:backup:a bc"
    assert parse_task_id(run.task_id) == ("backup", int(T0.timestamp() * 1000), 2, "a bc")
    assert parse_task_id(Run("x", T0).task_id)[0] == "x"  # type: ignore[index]
    assert parse_task_id("not-chronos") is None


def test_a_due_run_is_queued_once_and_the_schedule_counts_down() -> None:
    state = state_of(scheduled("once", "R2/2026-03-02T12:00:01Z/PT1M"))
    assert state.tick(T0) == []
    (run,) = state.tick(T0 + timedelta(seconds=1.5))
    assert run.due == T0 + timedelta(seconds=1) and run.attempt == 0
    assert state.jobs["once"].schedule == "R1/2026-03-02T12:01:01.000Z/PT1M"
    assert state.tick(T0 + timedelta(seconds=2)) == []  # the next run is a minute away
    launch_all(state)
    state.status(run.task_id, "TASK_FINISHED", "", T0 + timedelta(seconds=3))
    (second,) = state.tick(T0 + timedelta(minutes=1, seconds=1))
    assert state.jobs["once"].schedule.startswith("R0/")  # type: ignore[union-attr]
    launch_all(state)
    state.status(second.task_id, "TASK_FINISHED", "", T0 + timedelta(minutes=2))
    assert state.tick(T0 + timedelta(hours=5)) == [] and state.queue == []
    assert state.jobs["once"].success_count == 2


def test_a_run_missed_by_more_than_epsilon_is_skipped() -> None:
    state = state_of(scheduled("late", "R/2026-03-02T11:00:00Z/PT1H", epsilon="PT10M"))
    assert state.tick(T0 + timedelta(minutes=20)) == []  # the 12:00 run is 20 minutes late
    assert state.jobs["late"].schedule == "R/2026-03-02T13:00:00.000Z/PT1H"
    (run,) = state.tick(T0 + timedelta(hours=1, minutes=5))  # 13:00, five minutes late: still runs
    assert run.due == T0 + timedelta(hours=1)


def test_disabled_jobs_never_run_but_their_schedules_move_on() -> None:
    state = state_of(scheduled("off", "R3/2026-03-02T12:00:00Z/PT1M", disabled=True))
    assert state.tick(T0 + timedelta(seconds=1)) == []
    assert state.jobs["off"].schedule == "R2/2026-03-02T12:01:00.000Z/PT1M"
    with pytest.raises(RunnerError, match="disabled"):
        state.trigger("off", T0)


def test_a_failing_run_is_retried_then_recorded_as_an_error() -> None:
    state = state_of(scheduled("flaky", "R/2030-01-01T00:00:00Z/P1D", retries=2))
    state.trigger("flaky", T0)
    attempts = []
    for _ in range(3):
        (run,) = launch_all(state)
        attempts.append(run.attempt)
        state.status(run.task_id, "TASK_FAILED", "exit 1", T0 + timedelta(seconds=len(attempts)))
    assert attempts == [0, 1, 2] and state.queue == [] and state.running == {}
    job = state.jobs["flaky"]
    assert (job.error_count, job.errors_since_last_success, job.success_count) == (1, 1, 0)
    assert job.last_error == "2026-03-02T12:00:03.000Z"


def test_success_queues_dependents_by_chronos_edge_rule() -> None:
    state = state_of(scheduled("a", "R/2030-01-01T00:00:00Z/P1D"), scheduled("b", "R/2030-01-01T00:00:00Z/P1D"),
                     dependent("child", "a"), dependent("both", "a", "b"))
    state.trigger("a", T0)
    (run,) = launch_all(state)
    queued = state.status(run.task_id, "TASK_FINISHED", "", T0)
    assert [r.job for r in queued] == ["child"]  # "both" waits for b
    assert state.jobs["a"].last_success == "2026-03-02T12:00:00.000Z"
    queued = state.success("b", T0)  # /job/success/b
    assert [r.job for r in queued] == ["both"]
    assert sorted(r.job for r in launch_all(state)) == ["both", "child"]
    assert state.graph_states() == ({"both": "running", "child": "running"}, {"both": 1, "child": 1})


def test_soft_error_runs_dependents_after_the_final_failure() -> None:
    state = state_of(scheduled("p", "R/2030-01-01T00:00:00Z/P1D", retries=0, softError=True), dependent("c", "p"))
    state.trigger("p", T0)
    (run,) = launch_all(state)
    assert [r.job for r in state.status(run.task_id, "TASK_FAILED", "", T0)] == ["c"]


def test_killed_runs_are_not_retried_and_non_concurrent_jobs_run_once_at_a_time() -> None:
    state = state_of(scheduled("k", "R/2030-01-01T00:00:00Z/P1D", retries=3))
    state.trigger("k", T0)
    assert state.trigger("k", T0 + timedelta(seconds=1)) is None  # already queued
    (run,) = launch_all(state)
    assert state.kill("k") == [run.task_id]
    assert state.status(run.task_id, "TASK_KILLED", "", T0) == []
    assert state.jobs["k"].error_count == 1


def test_offers_take_what_fits_and_build_task_infos() -> None:
    docker = J.parse_job({"name": "box", "command": "exit 0", "schedule": "R/2030-01-01T00:00:00Z/P1D",
                          "cpus": 1, "mem": 64, "container": {"type": "DOCKER", "image": "wharf/busybox:latest"},
                          "environmentVariables": [{"name": "FOO", "value": "bar"}]}, "iso8601")
    big = scheduled("big", "R/2030-01-01T00:00:00Z/P1D", cpus=3)
    picky = scheduled("picky", "R/2030-01-01T00:00:00Z/P1D", constraints=[["rack", "EQUALS", "rack-2"]])
    state = state_of(docker, big, picky)
    for name in ("box", "big", "picky"):
        state.trigger(name, T0)
    ((offer_id, chosen),) = plan_launches(state, [offer(cpus=3.5)])
    assert offer_id == "O-rack-1" and [run.job for run, _ in chosen] == ["box"]  # big no longer fits
    info = chosen[0][1]
    assert info["task_id"]["value"].startswith("ct:") and info["name"] == "ChronosTask:box"
    assert info["container"] == {"type": "DOCKER", "volumes": [], "docker": {
        "image": "wharf/busybox:latest", "network": "HOST", "force_pull_image": False, "parameters": []}}
    assert info["command"]["value"] == "exit 0" and info["command"]["shell"] is True
    assert {"name": "FOO", "value": "bar"} in info["command"]["environment"]["variables"]
    assert {r["name"]: r["scalar"]["value"] for r in info["resources"]} == {"cpus": 1, "mem": 64, "disk": 256}
    plan = plan_launches(state, [offer(cpus=8, rack="rack-2")])
    assert sorted(run.job for run, _ in plan[0][1]) == ["big", "box", "picky"]
    command = next(i for r, i in plan[0][1] if r.job == "big")
    assert "container" not in command


def test_deleting_drops_queued_runs_and_unknown_jobs_are_refused() -> None:
    state = state_of(scheduled("a", "R/2030-01-01T00:00:00Z/P1D"), dependent("c", "a"))
    with pytest.raises(J.JobError, match="depends only on it"):
        state.delete("a")
    state.trigger("c", T0)
    assert state.delete("c") == [] and state.queue == []
    with pytest.raises(RunnerError, match="Job 'nope' not found"):
        state.trigger("nope", T0)


def test_runs_lost_with_an_old_framework_registration_are_retried() -> None:
    state = state_of(scheduled("r", "R/2030-01-01T00:00:00Z/P1D", retries=1),
                     scheduled("z", "R/2030-01-01T00:00:00Z/P1D", retries=0))
    state.trigger("r", T0)
    state.trigger("z", T0)
    launch_all(state)
    queued = state.lost_all("registered anew", T0)
    assert [(run.job, run.attempt) for run in queued] == [("r", 1)] and state.running == {}
    assert state.jobs["z"].error_count == 1
