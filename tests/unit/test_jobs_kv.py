"""The KV layout and transaction of `wharf jobs sync-kv`, reading jobs back, and what `watch-kv` does
with a state (against a fake Chronos). Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chronos_jobs import kv, repo, spec, sync
from chronos_jobs.client import ChronosClient
from wharf.configrepo import Spec, SpecErrors
from wharf.errors import Failure
from wharf.kvprefix import Entry, entries_of, txn_ops
from wharf.notify import Event

pytestmark = pytest.mark.unit

SCHEDULE = "R/2030-01-01T02:00:00Z/P1D"


def job_file(name: str, **fields: Any) -> repo.JobFile:
    data = {"name": name, "command": "true", **fields}
    if "parents" not in fields and "schedule" not in fields:
        data["schedule"] = SCHEDULE
    return repo.JobFile(Spec(f"jobs/{name}.yaml", name, data), spec.to_chronos(data))


def files(*made: repo.JobFile) -> dict[str, repo.JobFile]:
    return {f.job["name"]: f for f in made}


def entries(docs: dict[str, bytes], index: int = 3) -> dict[str, Entry]:
    return entries_of([{"Key": k, "Value": v, "ModifyIndex": index} for k, v in docs.items()])


REPO = files(job_file("extract", image="wharf/busybox:latest", env={"STAGE": "test"}),
             job_file("report", parents=["extract"]))


def test_documents_are_one_key_per_job_as_sync_would_send_it() -> None:
    docs = kv.documents(REPO, "cfg", "team-a", commit="abc")
    assert sorted(docs) == ["cfg/.wharf/commit", "cfg/extract", "cfg/report"]
    assert json.loads(docs["cfg/extract"]) == sync.desired(REPO, "team-a")["extract"]
    assert {"name": "WHARF_OWNER", "value": "team-a"} in json.loads(docs["cfg/report"])["environmentVariables"]
    assert docs["cfg/.wharf/commit"] == b"abc"
    assert docs == kv.documents(dict(reversed(REPO.items())), "cfg", "team-a", commit="abc")  # stable bytes


def test_only_changed_keys_are_written() -> None:
    before = kv.documents(REPO, "p", "wharf", commit="c1")
    after = kv.documents(files(REPO["extract"], job_file("report", parents=["extract"], retries=0),
                               job_file("load", parents=["extract"])), "p", "wharf")
    ops = txn_ops(after, {k: Entry(k, v, 5) for k, v in before.items()}, keep_commit=True)
    assert [(o["KV"]["Verb"], o["KV"]["Key"], o["KV"]["Index"]) for o in ops] == [("cas", "p/load", 0),
                                                                                  ("cas", "p/report", 5)]
    assert txn_ops(before, {k: Entry(k, v, 1) for k, v in before.items()}) == []


def test_jobs_read_back_are_the_repositorys_and_the_owner_is_the_watchers() -> None:
    read, commit = kv.jobs_of(entries(kv.documents(REPO, "p", "someone", "abc") | {"p/dir/": b""}), "p")
    assert commit == "abc" and sorted(read) == ["extract", "report"]
    assert {name: f.job for name, f in read.items()} == {name: f.job for name, f in REPO.items()}
    assert read["report"].path == "p/report"
    assert sync.desired(read, "wharf") == sync.desired(REPO, "wharf")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("p/extract", b"{not json", "p/extract: not JSON: "),
    ("p/extract", json.dumps({"name": "other", "command": "x", "schedule": SCHEDULE}).encode(),
     "p/extract: name: must hold the Chronos JSON of the job extract"),
    ("p/extract", b"[1]", "p/extract: name: must hold the Chronos JSON of the job extract"),
    ("p/extract", json.dumps({"name": "extract", "command": "x", "schedule": "R/2030-01-01T02:00:00Z/P1X"}).encode(),
     "p/extract: schedule: 'R/2030-01-01T02:00:00Z/P1X': bad duration 'P1X'"),
    ("p/extract", json.dumps({"name": "extract", "command": "x", "schedule": SCHEDULE, "cpus": -1}).encode(),
     "p/extract: cpus: must be a number >= 0"),
    ("p/nested/job", json.dumps({"name": "nested/job"}).encode(), "p/nested/job: the key is not a valid Chronos job"),
])
def test_a_bad_value_is_refused_naming_its_key(key: str, value: bytes, message: str) -> None:
    docs = kv.documents(REPO, "p", "wharf") | {key: value}
    with pytest.raises(SpecErrors) as info:
        kv.jobs_of(entries(docs), "p")
    assert str(info.value).startswith(message), str(info.value)


def test_a_cycle_among_the_prefixs_jobs_is_refused_naming_a_key() -> None:
    docs = kv.documents(files(job_file("a", parents=["b"]), job_file("b", parents=["a"])), "p", "wharf")
    with pytest.raises(SpecErrors, match=r"p/a: parents: the parents form a cycle"):
        kv.jobs_of(entries(docs), "p")


class FakeChronos(ChronosClient):
    """Chronos's jobs in a dict; `fail_on` names a job whose write is refused."""

    def __init__(self, jobs: dict[str, dict[str, Any]] | None = None, fail_on: str = "") -> None:
        self.held, self.fail_on = dict(jobs or {}), fail_on
        self.writes: list[tuple[str, str]] = []

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {name: dict(job) for name, job in self.held.items()}

    def put(self, job: Any, endpoint: str) -> None:
        if job["name"] == self.fail_on:
            raise Failure(f"Chronos refused {job['name']}")
        self.writes.append(("put", job["name"]))
        self.held[job["name"]] = dict(job)

    def delete(self, name: str) -> None:
        self.writes.append(("delete", name))
        del self.held[name]


class Heard:
    """Stands in for a daemon's notices: the events sent."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def send(self, events: list[Event]) -> None:
        self.events += events

    def close(self) -> None:
        pass


def watcher(chronos: FakeChronos, prune: bool = False) -> tuple[kv.JobsKvWatcher, Heard]:
    made = kv.JobsKvWatcher(object(), chronos, "p", "wharf", prune=prune)
    heard = Heard()
    made.notices = heard  # type: ignore[assignment]
    return made, heard


def test_the_watcher_syncs_a_good_state_and_tells_each_job() -> None:
    chronos = FakeChronos()
    daemon, heard = watcher(chronos)
    daemon.act(7, entries(kv.documents(REPO, "p", "wharf", commit="c0ffee")))
    assert chronos.writes == [("put", "extract"), ("put", "report")]
    assert [(e.kind, e.app, e.result, e.message, e.commits[0]) for e in heard.events] == [
        ("sync", "extract", "ok", "create", "c0ffee"), ("sync", "report", "ok", "create", "c0ffee")]
    daemon.act(8, entries(kv.documents(REPO, "p", "wharf", commit="c0ffee")))
    assert len(chronos.writes) == 2 and len(heard.events) == 2  # nothing changed: nothing sent, nothing told


def test_a_bad_value_refuses_the_whole_index_and_is_told() -> None:
    chronos = FakeChronos()
    daemon, heard = watcher(chronos)
    docs = kv.documents(REPO, "p", "wharf") | {"p/report": b"oops"}
    daemon.act(9, entries(docs))
    assert chronos.writes == []
    (event,) = heard.events
    assert (event.kind, event.app, event.result) == ("sync", "p/report", "failed")
    assert "p/report: not JSON" in event.message


def test_a_missing_parent_in_chronos_is_refused_and_prune_spares_an_empty_prefix() -> None:
    mine = spec.with_owner({"name": "old", "command": "x", "schedule": SCHEDULE}, "wharf")
    chronos = FakeChronos({"old": mine})
    daemon, heard = watcher(chronos, prune=True)
    daemon.act(3, entries(kv.documents(files(job_file("orphan", parents=["gone"])), "p", "wharf")))
    assert chronos.writes == [] and "p/orphan: parents: parent 'gone' does not exist" in heard.events[0].message
    daemon.act(4, {})
    assert chronos.writes == []  # an empty prefix never deletes every job
    daemon.act(5, entries(kv.documents(REPO, "p", "wharf")))
    assert chronos.writes == [("put", "extract"), ("put", "report"), ("delete", "old")]


def test_a_refused_write_is_told_once_and_raised_for_the_skeleton_to_retry() -> None:
    chronos = FakeChronos(fail_on="report")
    daemon, heard = watcher(chronos)
    state = entries(kv.documents(REPO, "p", "wharf"))
    for _ in range(2):
        with pytest.raises(Failure, match="Chronos refused report"):
            daemon.act(6, state)
    assert [(e.app, e.result) for e in heard.events] == [("extract", "ok"), ("report", "failed")]
    chronos.fail_on = ""
    daemon.act(6, state)
    assert chronos.writes == [("put", "extract"), ("put", "report")] and heard.events[-1].app == "report"
