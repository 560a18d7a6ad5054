"""Deploy progress: a live table on a terminal, one plain line per change of state otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from marathon_apps.deploy import Outcome, PlainReporter, RichReporter, healthy_counts, ready, request_body
from marathon_apps.plan import AppChange

pytestmark = pytest.mark.unit


def test_plain_lines() -> None:
    lines: list[str] = []
    reporter = PlainReporter(lines.append)
    reporter.update("/api", "deploying", "1/2 healthy")
    reporter.update("/api", "deployed")
    assert lines == ["/api: deploying (1/2 healthy)", "/api: deployed"]


def test_rich_table_shows_each_apps_last_state() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    with RichReporter(["/api", "/web"], console=console) as reporter:
        reporter.update("/api", "deploying", "0/1 healthy")
        reporter.update("/api", "deployed", "in 2.0s")
        reporter.update("/web", "not attempted")
    final = out.getvalue().rsplit("app ", 1)[-1]
    assert "/api  deployed       in 2.0s" in final and "/web  not attempted" in final


def test_health_and_readiness_as_wharf_judges_them() -> None:
    checked = {"instances": 2, "healthChecks": [{}], "tasksHealthy": 1, "tasksRunning": 2, "deployments": []}
    assert healthy_counts(checked) == (1, 2) and not ready(checked)
    assert ready(dict(checked, tasksHealthy=2))
    assert not ready(dict(checked, tasksHealthy=2, deployments=[{"id": "d"}]))
    assert ready({"instances": 1, "tasksRunning": 1, "deployments": []})  # no checks: running is healthy


def test_commit_label_is_the_new_commit_or_the_one_the_app_had() -> None:
    change = AppChange("update", "/api", desired={"id": "/api", "labels": {"wharf.owner": "wharf"}},
                       live={"labels": {"wharf.commit": "old"}})
    assert request_body(change, "new")["labels"] == {"wharf.owner": "wharf", "wharf.commit": "new"}
    assert request_body(change, None)["labels"]["wharf.commit"] == "old"
    assert Outcome(failed={"/a": "x"}).to_json()["ok"] is False
