"""Our Chronos job reader against Chronos's own examples (`../shared/upstream/chronos`).

Every job in the REST API docs and in Chronos's integration tests must be accepted, render through
`to_json` with every field it was given (same names, equivalent values), read back unchanged, and
carry a schedule we can parse. Some documented bodies are fragments, and are treated as the docs
intend:
- `docker_forcepull_fragment.json` and `mesos_container_external_volume_fragment.json` are
  `container` settings "added to your container configuration": merged into the Docker job.
- `schedule_timezone_fragment.json` is a `schedule` with its `scheduleTimeZone`: merged into the
  scheduled job example.
- `task_progress.json` is not a job at all (the body of the task progress endpoint): skipped.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.chronos import jobs as J
from tests.upstream import UPSTREAM as UPSTREAM_ROOT
from wharf.contracts import chronos_schedule as sched

UPSTREAM = UPSTREAM_ROOT / "chronos"
DOCS = UPSTREAM / "docs-examples"
# A mark, not a skip at import: test_chronos_standin imports the helpers below and must still run.
pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason=f"upstream Chronos examples not found at {UPSTREAM}")
INTEGRATION = sorted((UPSTREAM / "integration-tests" / "jobs").glob("*/*.yaml"))

# fragment -> (the example it completes, why)
FRAGMENTS = {
    "docker_forcepull_fragment.json": "docker_job.json",
    "mesos_container_external_volume_fragment.json": "docker_job.json",
    "schedule_timezone_fragment.json": "scheduled_job_iso8601.json",
}
NOT_JOBS = {"task_progress.json": "the body of POST .../task/<id>/progress, not a job"}
# Chronos replaces an absent or zero resource with the --mesos_task_* default.
RESOURCE_DEFAULTS = {"cpus": J.DEFAULT_CPUS, "mem": J.DEFAULT_MEM, "disk": J.DEFAULT_DISK}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())


def merged(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """`base` with `fragment` laid over it, objects merged key by key."""
    result = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def documented_jobs() -> list[Any]:
    cases = []
    for path in sorted(DOCS.glob("*.json")):
        if path.name in NOT_JOBS:
            cases.append(pytest.param(None, id=path.name, marks=pytest.mark.skip(reason=NOT_JOBS[path.name])))
        elif path.name in FRAGMENTS:
            cases.append(pytest.param(merged(load(DOCS / FRAGMENTS[path.name]), load(path)),
                                      id=f"{path.name}+{FRAGMENTS[path.name]}"))
        else:
            cases.append(pytest.param(load(path), id=path.name))
    return cases


def integration_jobs() -> list[Any]:
    return [pytest.param(load(path), id=str(path.relative_to(UPSTREAM))) for path in INTEGRATION]


def kind_of(data: dict[str, Any]) -> str:
    return "dependency" if "parents" in data else "iso8601"


def equivalent(given: Any, rendered: Any, path: str = "") -> list[str]:
    """Where `rendered` lacks a field of `given` or holds a different value (numbers may be strings)."""
    if isinstance(given, dict):
        if not isinstance(rendered, dict):
            return [f"{path}: not an object"]
        return [problem for key, value in given.items()
                for problem in (equivalent(value, rendered[key], f"{path}.{key}") if key in rendered
                                else [f"{path}.{key}: missing"])]
    if isinstance(given, list):
        if not isinstance(rendered, list) or len(given) != len(rendered):
            return [f"{path}: {rendered!r} is not like {given!r}"]
        return [problem for index, (a, b) in enumerate(zip(given, rendered, strict=True))
                for problem in equivalent(a, b, f"{path}[{index}]")]
    if isinstance(given, bool) or isinstance(rendered, bool):
        same = isinstance(given, bool) and isinstance(rendered, bool) and given == rendered
        return [] if same else [f"{path}: {rendered!r} != {given!r}"]
    if isinstance(given, int | float | str) and isinstance(rendered, int | float):
        return [] if float(given) == float(rendered) else [f"{path}: {rendered!r} != {given!r}"]
    return [] if given == rendered else [f"{path}: {rendered!r} != {given!r}"]


def expected_rendering(data: dict[str, Any]) -> dict[str, Any]:
    """What Chronos normalises on the way in: zero resources take defaults, container types are upper case."""
    expected = copy.deepcopy(data)
    for field, default in RESOURCE_DEFAULTS.items():
        if field in expected and float(expected[field]) == 0:
            expected[field] = default
    if "container" in expected and "type" in expected["container"]:
        expected["container"]["type"] = expected["container"]["type"].upper()
    return expected


@pytest.mark.parametrize("data", documented_jobs() + integration_jobs())
def test_example_parses_and_round_trips(data: dict[str, Any]) -> None:
    job = J.parse_job(data, kind_of(data))
    rendered = J.to_json(job)
    assert equivalent(expected_rendering(data), rendered) == []
    assert json.loads(json.dumps(rendered)) == rendered
    assert J.parse_job(rendered, job.kind) == job
    if job.schedule is not None:
        schedule = J.job_schedule(job)
        assert sched.parse(sched.format(schedule), job.schedule_time_zone or None) == schedule


def test_every_upstream_file_is_accounted_for() -> None:
    names = {path.name for path in DOCS.glob("*.json")}
    complete = {name for name in names if "name" in load(DOCS / name)}
    assert names == complete | set(FRAGMENTS) | set(NOT_JOBS)
    assert set(FRAGMENTS.values()) <= complete
    assert len(INTEGRATION) == 4


def test_the_documented_time_zone_example_runs_on_pacific_time() -> None:
    fragment = load(DOCS / "schedule_timezone_fragment.json")
    schedule = sched.parse(fragment["schedule"], fragment["scheduleTimeZone"])
    assert sched.format_datetime(schedule.start) == "2014-10-10T18:32:00.000-07:00"
    # Hourly, on Pacific time: after the November change the offset is -08:00.
    after = sched.next_run(schedule, datetime(2014, 11, 3, 12, tzinfo=UTC))
    assert after is not None and sched.format_datetime(after) == "2014-11-03T04:32:00.000-08:00"


def test_the_documented_sample_runs_ten_times_two_seconds_apart() -> None:
    job = J.parse_job(load(DOCS / "scheduled_job_iso8601.json"), "iso8601")
    schedule = J.job_schedule(job)
    runs = []
    current: sched.Schedule | None = schedule
    while current is not None and current.repetitions != 0:
        runs.append(current.start)
        current = sched.advance(current, current.start)
    assert len(runs) == 10 and runs[-1] - runs[0] == timedelta(seconds=18)
    assert current is not None and sched.format(current) == "R0/2012-10-01T05:52:20.000Z/PT2S"
    # A run 10 minutes late is still started (epsilon PT15M), 20 minutes late it is skipped.
    epsilon = sched.parse_period(job.epsilon)
    assert sched.is_due(schedule, runs[-1] + timedelta(minutes=10), epsilon)
    assert not sched.is_due(schedule, runs[-1] + timedelta(minutes=20), epsilon)


def test_the_integration_jobs_form_chronos_graph() -> None:
    jobs: dict[str, J.Job] = {}
    for path in sorted(INTEGRATION, key=lambda path: path.parent.name != "scheduled"):  # parents first
        job = J.parse_job(load(path), kind_of(load(path)))
        J.check_dependencies(jobs, job)
        jobs[job.name] = job
    assert J.children_of(jobs, "hourly-sleep1m") == ("hourly-dependent-sleep1m",)
    assert J.ready_dependents(jobs, "hourly-sleep1m", {})[0] == ("hourly-dependent-sleep1m",)
    assert J.graph_csv(jobs, {"hourly-sleep1m": "running"}).splitlines() == [
        "node,daily-sleep1m,fresh,idle",
        "node,hourly-dependent-sleep1m,fresh,idle",
        "node,hourly-sleep1m,fresh,1 running",
        "node,weekly-sleep1m,fresh,idle",
        "link,hourly-sleep1m,hourly-dependent-sleep1m",
    ]
    # The weekly job started on a Monday at 22:00 UTC and stays on Mondays.
    weekly = sched.next_run(J.job_schedule(jobs["weekly-sleep1m"]), datetime(2026, 7, 15, tzinfo=UTC))
    assert weekly == datetime(2026, 7, 20, 22, tzinfo=UTC) and weekly.weekday() == 0


def test_the_dependent_example_needs_its_parents() -> None:
    job = J.parse_job(load(DOCS / "dependent_job.json"), "dependency")
    with pytest.raises(J.JobError, match="unknown parents 'db_export-airbed_hostings', 'db_export-airbed_reserv"):
        J.check_dependencies({}, job)
