"""The Chronos stand-in through its HTTP API: Chronos's own examples, and jobs really run on the Mesos stand-in.

The scheduler is a framework of the Mesos stand-in (found through ZooKeeper, as real Chronos finds
its master); command jobs run as host processes on its agents, container jobs on the real Docker engine.

With CHRONOS_URL set (and MESOS_MASTER, to see its tasks) the tests of the API run against that real
Chronos, with job names of their own, deleting what they create; tests of what only stand-ins on this
machine show are then skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devcluster.chronos.server import ChronosStandin
from devcluster.mesos import MesosStandin
from tests.conftest import Endpoint, stand_in_only
from tests.contract.test_chronos_examples import (
    DOCS,
    FRAGMENTS,
    INTEGRATION,
    NOT_JOBS,
    equivalent,
    expected_rendering,
    load,
    merged,
)
from tests.polling import wait_for
from tests.upstream import upstream
from wharf.contracts import chronos_schedule as sched

pytestmark = pytest.mark.contract

IMAGE = "wharf/busybox:latest"


# --- helpers --------------------------------------------------------------------------------------

def call(url: str, method: str = "GET", body: Any = None, raw: bytes | None = None) -> tuple[int, str]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def jobs_by_name(base: str) -> dict[str, dict[str, Any]]:
    status, text = call(base + "/v1/scheduler/jobs")
    assert status == 200, text
    return {job["name"]: job for job in json.loads(text)}


def iso(moment: datetime) -> str:
    return sched.format_datetime(moment.astimezone(UTC))


def framework_tasks(mesos: Endpoint | None) -> list[dict[str, Any]]:
    if mesos is None:
        pytest.skip("CHRONOS_URL is set without MESOS_MASTER: the tasks of its jobs cannot be seen")
    with urllib.request.urlopen(mesos.url + "/master/state", timeout=10) as response:
        state = json.load(response)
    return [task for framework in state["frameworks"] for task in framework["tasks"] + framework["completed_tasks"]]


class Clock:
    """A clock the test sets: the stand-in reads `now` through it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def graph(chronos: Endpoint, api: str, *names: str) -> str:
    """`/graph/csv`; from a real Chronos only the lines of the named jobs (it has others)."""
    text = call(api + "/graph/csv")[1]
    if chronos.real:
        text = "\n".join(line for line in text.splitlines() if line.split(",")[1:2] and line.split(",")[1] in names)
    return text


# --- fixtures (`chronos` itself, a fresh stand-in per test or CHRONOS_URL, is in tests/conftest.py) --------

STANDINS_HERE = ("CHRONOS_URL", "MESOS_MASTER")  # tests that look at this machine need both as stand-ins


@pytest.fixture
def name(chronos: Endpoint) -> Iterator[Callable[[str], str]]:
    """Job names of this test's own; on a real Chronos the jobs left are deleted, dependents first."""
    suffix = uuid.uuid4().hex[:6]
    given: list[str] = []

    def make(base: str) -> str:
        given.append(f"{base}-{suffix}")
        return given[-1]

    yield make
    if chronos.real:
        left = jobs_by_name(chronos.url)
        for job in reversed(given):
            if job in left:
                call(chronos.url + f"/v1/scheduler/job/{job}", "DELETE")


# --- Chronos's documented jobs ----------------------------------------------------------------------

def example_bodies() -> list[dict[str, Any]]:
    """Every documented job (fragments merged into the job they complete) and every integration-test job."""
    bodies = []
    for path in sorted(DOCS.glob("*.json")):
        if path.name in NOT_JOBS:
            continue
        if path.name in FRAGMENTS:
            bodies.append(merged(load(DOCS / FRAGMENTS[path.name]), load(path)))
        else:
            bodies.append(load(path))
    return bodies + [load(path) for path in INTEGRATION]


@stand_in_only("CHRONOS_URL", why="sets the stand-in's clock back to post the 2012-2016 examples")
def test_every_documented_job_is_accepted_and_listed_back() -> None:
    upstream("chronos", "docs-examples")
    # Chronos 3 refuses a new job whose start is more than a year in the past; the examples date from
    # 2012-2016, so each is posted on a clock set just after its own start.
    clock = Clock(datetime.now(UTC))
    with ChronosStandin(clock=clock) as chronos:
        base = chronos.url
        bodies = example_bodies()
        posted: dict[str, dict[str, Any]] = {}
        parents = {parent for body in bodies for parent in body.get("parents", [])}
        for parent in sorted(parents - {body["name"] for body in bodies}):  # the dependent example's parents
            assert call(base + "/v1/scheduler/iso8601", "POST",
                        {"name": parent, "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D"})[0] == 204
        for body in sorted(bodies, key=lambda body: "parents" in body):  # scheduled jobs (parents) first
            kind = "dependency" if "parents" in body else "iso8601"
            if "schedule" in body:
                start = sched.parse(body["schedule"], body.get("scheduleTimeZone")).start
                clock.now = start.astimezone(UTC) + timedelta(days=1)
            status, text = call(base + f"/v1/scheduler/{kind}", "POST", body)
            assert status == 204, (body["name"], text)
            # fragments complete the same job: a second POST of a name replaces it, as in Chronos
            assert equivalent(expected_rendering(body), jobs_by_name(base)[body["name"]]) == [], body["name"]
            posted[body["name"]] = body
        listed = jobs_by_name(base)
        assert set(listed) == set(posted) | parents and len(posted) == 8
        # Chronos 2's paths answer too
        assert set(json.loads(call(base + "/scheduler/jobs")[1])[0]) == set(listed[sorted(listed)[0]])


def test_bad_requests_get_chronos_status_codes(chronos: Endpoint, name: Callable[[str], str]) -> None:
    now = datetime.now(UTC)
    x, old, orphan, ghost, nope, p, c = (name(n) for n in ("x", "old", "orphan", "ghost", "nope", "p", "c"))
    before = set(jobs_by_name(chronos.url))  # none on a fresh stand-in
    api = chronos.url + "/v1/scheduler"
    assert call(api + "/iso8601", "POST", raw=b"{not json")[0] == 400
    status, text = call(api + "/iso8601", "POST", {"name": x, "command": "true", "schedule": "R/bogus/PT1M"})
    assert status == 400 and "schedule 'R/bogus/PT1M'" in text
    status, text = call(api + "/iso8601", "POST",
                        {"name": old, "command": "true", "schedule": "R/2012-01-01T00:00:00Z/PT1M"})
    assert status == 400 and "more than 1 year in the past" in text
    status, text = call(api + "/dependency", "POST", {"name": orphan, "command": "true", "parents": [ghost]})
    assert status == 400 and f"'{ghost}'" in text
    for method, path in (("PUT", f"/job/{nope}"), ("DELETE", f"/job/{nope}"), ("PUT", f"/job/success/{nope}"),
                         ("DELETE", f"/task/kill/{nope}")):
        status, text = call(api + path, method)
        assert (status, text) == (400, f"Job '{nope}' not found"), path
    parent = {"name": p, "command": "true", "schedule": f"R/{iso(now + timedelta(days=1))}/P1D"}
    assert call(api + "/iso8601", "POST", parent)[0] == 204
    assert call(api + "/dependency", "POST", {"name": c, "command": "true", "parents": [p]})[0] == 204
    assert call(api + "/dependency", "PUT", {"name": c, "command": "echo new", "parents": [p]})[0] == 204
    assert jobs_by_name(chronos.url)[c]["command"] == "echo new"  # PUT replaces
    status, text = call(api + "/dependency", "PUT", {"name": c, "command": "true", "parents": [c]})
    assert status == 400 and "cycle" in text
    status, text = call(api + f"/job/{p}", "DELETE")
    assert status == 400 and f"'{c}' depends only on it" in text
    assert call(api + f"/job/{c}", "DELETE")[0] == 204
    assert call(api + f"/job/{p}", "DELETE")[0] == 204
    assert {n: job for n, job in jobs_by_name(chronos.url).items() if n not in before} == {}


# --- jobs really run --------------------------------------------------------------------------------

@stand_in_only(*STANDINS_HERE, why="reads the job's host-process sandbox on this machine")
def test_a_scheduled_command_runs_then_its_dependent(chronos: Endpoint) -> None:
    mesos = chronos.mesos
    assert mesos is not None
    api = chronos.url + "/v1/scheduler"
    start = datetime.now(UTC) + timedelta(seconds=1)
    parent = {"name": "hello", "command": "echo hello from $CHRONOS_JOB_NAME $GREETING",
              "schedule": f"R1/{iso(start)}/PT1M", "environmentVariables": [{"name": "GREETING", "value": "hi"}]}
    assert call(api + "/iso8601", "POST", parent)[0] == 204
    assert call(api + "/dependency", "POST", {"name": "after-hello", "command": "true", "parents": ["hello"]})[0] == 204
    jobs = wait_for(lambda: (j := jobs_by_name(chronos.url))["after-hello"]["successCount"] == 1 and j,
                    what="the dependent job to succeed")
    hello = jobs["hello"]
    assert (hello["successCount"], hello["errorCount"]) == (1, 0)
    assert sched.parse_datetime(hello["lastSuccess"]) >= start
    assert hello["schedule"].startswith("R0/")
    assert sched.parse_datetime(jobs["after-hello"]["lastSuccess"]) >= sched.parse_datetime(hello["lastSuccess"])
    tasks = {task["id"]: task for task in framework_tasks(mesos)}
    (hello_id,) = [task_id for task_id in tasks if ":hello:" in task_id]
    assert hello_id == f"ct:{int(start.timestamp()) * 1000 + start.microsecond // 1000}:0:hello:"
    assert tasks[hello_id]["state"] == "TASK_FINISHED" and "container" not in tasks[hello_id]
    (stdout,) = mesos.standin.state_dir.rglob(f"{hello_id.replace(':', '_')}/*/stdout")
    assert stdout.read_text() == "hello from hello hi\n"
    assert wait_for(lambda: "node,hello,success,idle" in call(api + "/graph/csv")[1], what="idle")


def test_a_failing_command_is_retried_then_records_an_error(chronos: Endpoint, name: Callable[[str], str]) -> None:
    fails = name("fails")
    api = chronos.url + "/v1/scheduler"
    body = {"name": fails, "command": "exit 3", "retries": 2,
            "schedule": f"R1/{iso(datetime.now(UTC) + timedelta(seconds=1))}/PT1M"}
    assert call(api + "/iso8601", "POST", body)[0] == 204
    job = wait_for(lambda: (j := jobs_by_name(chronos.url)[fails])["errorCount"] == 1 and j,
                   what="the job to fail")
    assert (job["successCount"], job["errorsSinceLastSuccess"]) == (0, 1) and job["lastError"]
    mesos = chronos.mesos
    attempts = sorted(int(task["id"].split(":")[2]) for task in framework_tasks(mesos) if f":{fails}:" in task["id"])
    assert attempts == [0, 1, 2]
    assert all(task["state"] == "TASK_FAILED" for task in framework_tasks(mesos) if f":{fails}:" in task["id"])
    assert f"node,{fails},failure,idle" in graph(chronos, api, fails)


@stand_in_only(*STANDINS_HERE, why="runs the wharf/busybox image, built only on the local Docker engine")
def test_a_manual_start_runs_a_docker_container(chronos: Endpoint, docker_engine: Any) -> None:
    mesos = chronos.mesos
    api = chronos.url + "/v1/scheduler"
    body = {"name": "boxed", "command": "exit 0", "schedule": f"R/{iso(datetime.now(UTC) + timedelta(days=1))}/P1D",
            "container": {"type": "DOCKER", "image": IMAGE}, "mem": 32}
    assert call(api + "/iso8601", "POST", body)[0] == 204
    assert call(api + "/job/boxed", "PUT")[0] == 204
    job = wait_for(lambda: (j := jobs_by_name(chronos.url)["boxed"])["successCount"] == 1 and j,
                   what="the container job to succeed")
    assert job["errorCount"] == 0
    (task,) = [task for task in framework_tasks(mesos) if ":boxed:" in task["id"]]
    assert task["state"] == "TASK_FINISHED"
    assert task["container"]["type"] == "DOCKER" and task["container"]["docker"]["image"] == IMAGE
    assert job["schedule"].startswith("R/")  # a manual start leaves the schedule alone


def test_graph_csv_shows_nodes_and_links(chronos: Endpoint, name: Callable[[str], str]) -> None:
    root, leaf = name("root"), name("leaf")
    api = chronos.url + "/v1/scheduler"
    later = iso(datetime.now(UTC) + timedelta(days=1))
    body = {"name": root, "command": "sleep 30", "schedule": f"R/{later}/P1D"}
    assert call(api + "/iso8601", "POST", body)[0] == 204
    assert call(api + "/dependency", "POST", {"name": leaf, "command": "true", "parents": [root]})[0] == 204
    assert call(api + f"/job/{root}", "PUT")[0] == 204
    lines = wait_for(lambda: f"node,{root},fresh,1 running" in (text := graph(chronos, api, root, leaf)) and text,
                     what="root to run").splitlines()
    assert lines == [f"node,{leaf},fresh,idle", f"node,{root},fresh,1 running", f"link,{root},{leaf}"]
    assert call(api + f"/task/kill/{root}", "DELETE")[0] == 204
    wait_for(lambda: f"node,{root},failure,idle" in graph(chronos, api, root, leaf), what="the kill")
    assert call(api + f"/job/success/{root}", "PUT")[0] == 200  # marks success: the leaf runs
    wait_for(lambda: jobs_by_name(chronos.url)[leaf]["successCount"] == 1, what="the leaf to run")


@stand_in_only("CHRONOS_URL", why="runs `python -m devcluster.chronos` here")
def test_python_m_runs_in_the_foreground_and_exits_0_on_sigterm(zookeeper: Any, tmp_path: Path) -> None:
    from devcluster.process import free_port

    zk = f"zk://{zookeeper.endpoints()['address']}/mesos-{uuid.uuid4().hex[:8]}"
    with MesosStandin(zk=zk, state_dir=tmp_path / "mesos", agents=1) as mesos:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "devcluster.chronos", "--port", str(port), "--master", zk],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == f"http://127.0.0.1:{port}"
            api = f"http://127.0.0.1:{port}/v1/scheduler"
            later = iso(datetime.now(UTC) + timedelta(days=1))
            job = {"name": "now", "command": "true", "schedule": f"R/{later}/P1D"}
            assert call(api + "/iso8601", "POST", job)[0] == 204
            assert call(api + "/job/now", "PUT")[0] == 204
            wait_for(lambda: jobs_by_name(f"http://127.0.0.1:{port}")["now"]["successCount"] == 1, what="the run")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
            wait_for(lambda: not mesos.view(lambda master: master.frameworks), what="the framework's teardown")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
