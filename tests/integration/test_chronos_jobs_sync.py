"""`wharf jobs` against the Chronos under test (the stand-in running real containers on the Mesos stand-in,
or `CHRONOS_URL`): sync a scheduled job with two dependents, run it, watch the dependents follow (or
not, when it fails), refuse bad repositories before sending anything, and send nothing on a re-sync.

What the stand-in received is read from its own request log, not from wharf's output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Endpoint, stand_in_only, wharf
from tests.polling import wait_for

pytestmark = pytest.mark.integration

IMAGE = "wharf/busybox:latest"
SCHEDULE = "R/2030-01-01T02:00:00Z/P1D"  # far enough ahead that only manual runs happen
WRITES = ("POST", "PUT", "DELETE")


def write_repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "jobs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def chain(root: Path, parent_command: str = "echo extracted", tag: str = "") -> Path:
    """A scheduled job and two dependents; `tag` ends each name (unique names on a real Chronos)."""
    return write_repo(root, {
        "extract.yaml": f"""
            name: extract{tag}
            schedule: {SCHEDULE}
            image: {IMAGE}
            command: {parent_command}
            retries: 0
            cpus: 0.1
            mem: 32
            """,
        "transform.yaml": f"""
            name: transform{tag}
            parents: [extract{tag}]
            image: {IMAGE}
            command: echo transformed
            env: {{STAGE: test}}
            """,
        "report.yaml": f"""
            name: report{tag}
            parents: [extract{tag}]
            image: {IMAGE}
            command: echo reported
            """,
    })


class Received:
    """The requests the Chronos stand-in answered, from its own HTTP log."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        caplog.set_level(logging.DEBUG, logger="wharf.devcluster.chronos.http")

    def all(self) -> list[tuple[str, str]]:
        return [(str(r.args[0]), str(r.args[1])) for r in self.caplog.records
                if r.name == "wharf.devcluster.chronos.http" and isinstance(r.args, tuple) and len(r.args) >= 2]

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.all() if method in WRITES]

    def clear(self) -> None:
        self.caplog.clear()


def jobs_in(chronos: Endpoint, tag: str = "") -> dict[str, dict[str, Any]]:
    """Chronos's jobs by name; with `tag`, only those whose names end with it, the tag cut off."""
    response = requests.get(chronos.url + "/v1/scheduler/jobs", auth=chronos.auth, timeout=10)
    response.raise_for_status()
    return {job["name"].removesuffix(tag): job for job in response.json() if job["name"].endswith(tag)}


def graph_states(chronos: Endpoint, tag: str = "") -> dict[str, str]:
    response = requests.get(chronos.url + "/v1/scheduler/graph/csv", auth=chronos.auth, timeout=10)
    response.raise_for_status()
    rows = (line.split(",") for line in response.text.splitlines())
    return {row[1].removesuffix(tag): row[3] for row in rows if row[0] == "node" and row[1].endswith(tag)}


@pytest.fixture
def tag(chronos: Endpoint) -> Iterator[str]:
    """"" on a fresh stand-in; on a real Chronos a suffix that keeps this test's jobs apart, and
    deletes them afterwards (dependents first)."""
    if not chronos.real:
        yield ""
        return
    suffix = f"-{uuid.uuid4().hex[:6]}"
    yield suffix
    for _ in range(5):
        left = list(jobs_in(chronos, suffix).values())
        if not left:
            break
        for job in sorted(left, key=lambda j: not j.get("parents")):
            requests.delete(f"{chronos.url}/v1/scheduler/job/{job['name']}", auth=chronos.auth, timeout=10)


def jobs_cmd(chronos: Endpoint, *args: str) -> Any:
    return wharf("jobs", *args, env={"CHRONOS_URL": chronos.url})


@stand_in_only("CHRONOS_URL", why="reads the stand-in's request log")
def test_sync_then_run_parent_runs_dependents_after_it_and_a_resync_sends_nothing(
        chronos: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    received = Received(caplog)
    repo = chain(tmp_path)

    synced = jobs_cmd(chronos, "sync", str(repo), "--json")
    assert synced.returncode == 0, synced.stderr
    writes = received.writes()
    # the parent first, each job to its endpoint
    assert writes[0] == ("POST", "/v1/scheduler/iso8601")
    assert writes[1:] == [("POST", "/v1/scheduler/dependency")] * 2
    jobs = jobs_in(chronos)
    assert set(jobs) == {"extract", "transform", "report"}
    assert jobs["extract"]["schedule"] == SCHEDULE
    assert jobs["report"]["parents"] == ["extract"]
    assert jobs["transform"]["container"]["image"] == IMAGE
    assert {"name": "STAGE", "value": "test"} in jobs["transform"]["environmentVariables"]
    assert {"name": "WHARF_OWNER", "value": "wharf"} in jobs["extract"]["environmentVariables"]

    run = jobs_cmd(chronos, "run", "extract", "--wait", "--timeout", "240")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == "extract: success"
    assert set(run.stdout.splitlines()[1:]) == {"transform: success", "report: success"}
    jobs = jobs_in(chronos)
    parent_done = jobs["extract"]["lastSuccess"]
    for child in ("transform", "report"):
        assert jobs[child]["successCount"] == 1 and jobs[child]["lastSuccess"] >= parent_done

    status = jobs_cmd(chronos, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {row["name"]: row for row in json.loads(status.stdout)}
    assert rows["extract"]["lastSuccess"] == parent_done and rows["extract"]["last"] == "success"
    assert rows["extract"]["nextRun"] == "2030-01-01T02:00:00.000Z" and rows["extract"]["owned"]
    assert rows["report"]["parents"] == ["extract"] and rows["report"]["status"] == "idle"
    drawn = jobs_cmd(chronos, "graph")  # of what Chronos has
    assert drawn.stdout == f"extract  {SCHEDULE}\n└── report\n└── transform\n", drawn.stderr

    # nothing changed in the repository, the jobs have run since: the second sync only reads
    received.clear()
    again = jobs_cmd(chronos, "sync", str(repo), "--json")
    assert again.returncode == 0, again.stderr
    assert received.all(), "the stand-in's request log recorded nothing"
    assert received.writes() == []
    assert json.loads(again.stdout)["changes"] == []
    assert jobs_in(chronos)["transform"]["successCount"] == 1

    # one edit sends one job
    (repo / "jobs" / "report.yaml").write_text((repo / "jobs" / "report.yaml").read_text().replace(
        "echo reported", "echo reported again"))
    received.clear()
    edited = jobs_cmd(chronos, "sync", str(repo), "--json")
    assert edited.returncode == 0, edited.stderr
    assert received.writes() == [("POST", "/v1/scheduler/dependency")]
    assert jobs_in(chronos)["report"]["command"] == "echo reported again"


def test_a_failing_parent_does_not_run_its_dependents(chronos: Endpoint, tmp_path: Path, tag: str) -> None:
    repo = chain(tmp_path, parent_command="exit 3", tag=tag)
    assert jobs_cmd(chronos, "sync", str(repo)).returncode == 0

    run = jobs_cmd(chronos, "run", f"extract{tag}", "--wait", "--timeout", "240")
    assert run.returncode == 1
    assert f"extract{tag}: failure" in run.stdout
    assert f"not run (a parent failed): report{tag}, transform{tag}" in run.stdout
    jobs = wait_for(lambda: (j := jobs_in(chronos, tag)) and j["extract"]["lastError"] and j, timeout=30,
                    what="the parent's failure recorded")
    assert jobs["extract"]["errorCount"] == 1
    # the stand-in queues dependents as it records the outcome: nothing queued now means none will run
    states = graph_states(chronos, tag)
    for child in ("transform", "report"):
        assert states[child] == "idle"
        assert jobs[child]["successCount"] == 0 and jobs[child]["errorCount"] == 0
        assert not jobs[child]["lastSuccess"] and not jobs[child]["lastError"]


@stand_in_only("CHRONOS_URL", why="reads the stand-in's request log")
def test_bad_repositories_are_refused_before_anything_is_sent(
        chronos: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    received = Received(caplog)
    good = chain(tmp_path / "good")
    assert jobs_cmd(chronos, "sync", str(good)).returncode == 0
    before = jobs_in(chronos)

    def variant(name: str, file: str, text: str) -> Path:
        root = chain(tmp_path / name)
        (root / "jobs" / file).write_text(textwrap.dedent(text).lstrip())
        return root

    cases = {
        "bad-iso8601": (variant("a", "extract.yaml", f"""
            name: extract
            schedule: R/2030-01-01T02:00:00Z/P1X
            image: {IMAGE}
            command: echo changed
            """), "jobs/extract.yaml:2: schedule: 'R/2030-01-01T02:00:00Z/P1X': bad duration 'P1X'"),
        "missing-parent": (variant("b", "report.yaml", """
            name: report
            parents: [extract, nightly-dump]
            command: echo changed
            """), "jobs/report.yaml:2: parents: parent 'nightly-dump' does not exist in the repository or in Chronos"),
        "cycle": (variant("c", "extract.yaml", """
            name: extract
            parents: [report]
            command: echo changed
            """), "jobs/extract.yaml:2: parents: the parents form a cycle: extract -> report -> extract"),
        "both": (variant("d", "transform.yaml", f"""
            name: transform
            schedule: {SCHEDULE}
            parents: [extract]
            command: echo changed
            """), "jobs/transform.yaml:3: parents: give exactly one of 'schedule'"),
    }
    for case, (root, message) in cases.items():
        received.clear()
        for command in ("plan", "sync"):
            result = jobs_cmd(chronos, command, str(root))
            assert result.returncode == 2, (case, command, result.stdout, result.stderr)
            line = result.stderr.strip().splitlines()[-1]
            assert message in line, (case, line)
        assert received.writes() == [], case
    assert jobs_in(chronos) == before


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))},
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com", **(env or {})}
    return subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def test_a_push_through_wharfs_git_hooks_checks_jobs_first_and_syncs_them_after(
        chronos: Endpoint, tmp_path: Path, tag: str) -> None:
    bare, work = tmp_path / "config.git", tmp_path / "work"
    assert _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path).returncode == 0
    assert _git("init", "-q", "-b", "main", str(work), cwd=tmp_path).returncode == 0
    _git("remote", "add", "origin", str(bare), cwd=work)
    installed = wharf("apps", "hook", "install", str(bare), "--branch", "main")  # every room's steps
    assert installed.returncode == 0, installed.stderr

    def push(message: str) -> subprocess.CompletedProcess[str]:
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", message, cwd=work)
        return _git("push", "-q", "origin", "main", cwd=work, env={"CHRONOS_URL": chronos.url})

    chain(work, tag=tag)
    (work / "jobs" / "extract.yaml").write_text(f"name: extract{tag}\nparents: [report{tag}]\ncommand: echo\n")
    rejected = push("a cycle")
    assert rejected.returncode != 0
    assert "jobs/extract.yaml:2: parents: the parents form a cycle" in rejected.stderr
    assert _git("ls-remote", str(bare), cwd=work).stdout == "", "the bare repository took the push"
    assert jobs_in(chronos, tag) == {}

    chain(work, tag=tag)
    accepted = push("no cycle")
    assert accepted.returncode == 0, accepted.stderr
    jobs = wait_for(lambda: (j := jobs_in(chronos, tag)) and len(j) == 3 and j, timeout=60,
                    what="the pushed jobs in Chronos")
    assert jobs["report"]["parents"] == [f"extract{tag}"]


def test_prune_deletes_only_wharfs_jobs_and_only_when_asked(chronos: Endpoint, tmp_path: Path, tag: str) -> None:
    repo = chain(tmp_path, tag=tag)
    owner = ("--owner", f"test{tag}")  # on a real Chronos, never prune anything but this test's jobs
    assert jobs_cmd(chronos, "sync", str(repo), *owner).returncode == 0
    theirs = {"name": f"theirs{tag}", "command": "echo theirs", "schedule": SCHEDULE}
    requests.post(chronos.url + "/v1/scheduler/iso8601", json=theirs, auth=chronos.auth,
                  timeout=10).raise_for_status()
    (repo / "jobs" / "report.yaml").unlink()

    kept = jobs_cmd(chronos, "sync", str(repo), *owner, "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["stale"] == [f"report{tag}"]
    assert sorted(jobs_in(chronos, tag)) == ["extract", "report", "theirs", "transform"]

    pruned = jobs_cmd(chronos, "sync", str(repo), *owner, "--prune", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert [(c["action"], c["name"]) for c in json.loads(pruned.stdout)["changes"]] == [("delete", f"report{tag}")]
    assert sorted(jobs_in(chronos, tag)) == ["extract", "theirs", "transform"]

    # a job that still needs a parent the prune would delete is refused before anything is deleted
    (repo / "jobs" / "extract.yaml").unlink()
    refused = jobs_cmd(chronos, "sync", str(repo), *owner, "--prune")
    assert refused.returncode == 2
    assert f"jobs/transform.yaml:2: parents: parent 'extract{tag}' does not exist in the repository or in " \
           "Chronos (a prune would delete it)" in refused.stderr
    assert sorted(jobs_in(chronos, tag)) == ["extract", "theirs", "transform"]
