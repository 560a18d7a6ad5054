"""Following a manual run from Chronos's records, the graph CSV, and the status rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chronos_jobs import run
from chronos_jobs.client import parse_graph_csv
from chronos_jobs.status import rows as status_rows

pytestmark = pytest.mark.unit

T0, T1, T2 = "2026-12-01T10:00:00.000Z", "2026-12-01T10:00:05.000Z", "2026-12-01T10:00:09.000Z"


def job(name: str, *parents: str, success: str = "", error: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "lastSuccess": success, "lastError": error}
    if parents:
        body["parents"] = list(parents)
    else:
        body["schedule"] = "R/2030-01-01T00:00:00Z/P1D"
    return body


def jobs(*items: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in items}


BEFORE = run.snapshot(jobs(job("a", success=T0), job("b", "a"), job("c", "a"), job("d", "b", "x"), job("x")))


def test_waiting_for_the_parent_then_for_its_dependents() -> None:
    now = jobs(job("a", success=T0), job("b", "a"), job("c", "a"), job("d", "b", "x"), job("x"))
    state = run.progress("a", BEFORE, now)
    assert (dict(state.finished), state.pending) == ({}, ("a", "b", "c"))
    now["a"]["lastSuccess"] = T1  # the old success does not count, a new one does
    state = run.progress("a", BEFORE, now)
    assert (dict(state.finished), state.pending) == ({"a": "success"}, ("b", "c"))
    now["b"]["lastSuccess"], now["c"]["lastError"] = T2, T2
    state = run.progress("a", BEFORE, now)
    # d also waits for x, which this run does not start: it is not expected
    assert (dict(state.finished), state.pending, state.done, state.ok) == (
        {"a": "success", "b": "success", "c": "failure"}, (), True, False)


def test_a_failed_parent_skips_every_dependent_below_it() -> None:
    now = jobs(job("a", success=T0, error=T1), job("b", "a"), job("c", "b"))
    state = run.progress("a", run.snapshot(jobs(job("a", success=T0), job("b", "a"), job("c", "b"))), now)
    assert (dict(state.finished), state.pending, state.skipped) == ({"a": "failure"}, (), ("b", "c"))


def test_the_later_of_a_new_success_and_a_new_error_wins() -> None:
    assert run.outcome(("", ""), job("a", success=T2, error=T1)) == "success"
    assert run.outcome(("", ""), job("a", success=T1, error=T2)) == "failure"
    assert run.outcome((T1, T2), job("a", success=T1, error=T2)) is None


def test_graph_csv() -> None:
    body = "node,a,success,idle\nnode,b,fresh,2 running\nnode,c,failure,queued\nlink,a,b\n"
    assert parse_graph_csv(body) == {"a": {"last": "success", "status": "idle"},
                                     "b": {"last": "fresh", "status": "running"},
                                     "c": {"last": "failure", "status": "queued"}}


def test_status_rows_say_when_each_job_runs_next() -> None:
    now = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    current = jobs({**job("a", success=T0), "schedule": "R/2026-12-01T02:00:00.000Z/PT1H"},
                   job("b", "a"), {**job("c"), "schedule": "R0/2026-12-01T02:00:00.000Z/PT1H"},
                   {**job("d"), "disabled": True},
                   {**job("e"), "environmentVariables": [{"name": "WHARF_OWNER", "value": "wharf"}]})
    rows = {row["name"]: row for row in status_rows(current, {"a": {"last": "success", "status": "idle"}},
                                                     now, "wharf")}
    assert rows["a"]["nextRun"] == "2026-12-01T11:00:00.000Z" and rows["a"]["last"] == "success"
    assert rows["b"]["next"] == "after a" and rows["b"]["nextRun"] is None
    assert rows["c"]["next"] == "never (no runs left)"
    assert rows["d"]["next"] == "disabled"
    assert [name for name, row in rows.items() if row["owned"]] == ["e"]
