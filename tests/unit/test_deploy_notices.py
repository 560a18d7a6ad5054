"""What a deploy, a rollback and a jobs sync tell the team, pure: one event per app or job it changed."""

from __future__ import annotations

from typing import Any

import pytest

from chronos_jobs import plan as job_plan
from chronos_jobs.sync import events_of as sync_events
from marathon_apps.deploy import Outcome
from marathon_apps.notices import events_of
from marathon_apps.plan import AppChange
from wharf.errors import Failure
from wharf.notify import Event
from wharf.sinks import Notices

pytestmark = pytest.mark.unit


def app(image: str, commit: str | None = None) -> dict[str, Any]:
    labels = {"wharf.commit": commit} if commit else {}
    return {"id": "/x", "container": {"type": "DOCKER", "docker": {"image": image}}, "labels": labels}


def test_each_changed_app_is_one_event_with_its_images_and_commit() -> None:
    changes = [AppChange("update", "/web", desired=app("web:2", "c2"), live=app("web:1")),
               AppChange("create", "/api", desired=app("api:1")),
               AppChange("update", "/db", desired=app("db:2"), live=app("db:1")),
               AppChange("update", "/late", desired=app("late:2"), live=app("late:1")),
               AppChange("delete", "/old", live=app("old:1")),
               AppChange("unchanged", "/same", desired=app("same:1"), live=app("same:1"))]
    outcome = Outcome(deployed=["/web", "/api", "/old"], rolled_back=["/db"],
                      failed={"/db": "not healthy within 60s"}, not_attempted=["/late"], unchanged=["/same"])
    events = {e.app: e for e in events_of(changes, outcome, commit="cafe")}
    assert set(events) == {"/web", "/api", "/db", "/late", "/old"}
    assert (events["/web"].result, events["/web"].versions, events["/web"].commits) == ("ok", ("web:1", "web:2"),
                                                                                      ("c2", None))
    assert events["/api"].versions == (None, "api:1") and events["/api"].commits == ("cafe", None)
    assert events["/db"].result == "rolled back" and "not healthy within 60s" in events["/db"].message
    assert events["/late"].result == "not attempted"
    assert events["/old"].versions == ("old:1", None)


def test_a_sync_tells_each_job_sent_and_the_one_it_failed_on() -> None:
    todo = job_plan.JobPlan((job_plan.JobChange("create", "a"), job_plan.JobChange("update", "b"),
                             job_plan.JobChange("create", "c")), (), ())
    assert [(e.app, e.result) for e in sync_events(todo, todo.changes[:1], "Chronos answered 400")] == [
        ("a", "ok"), ("b", "failed")]
    assert sync_events(todo, todo.changes[:1], "Chronos answered 400")[1].message == "update: Chronos answered 400"
    assert [e.result for e in sync_events(todo, todo.changes)] == ["ok", "ok", "ok"]


class Kept:
    def __init__(self) -> None:
        self.sent: list[Event] = []

    def send(self, event: Event) -> None:
        self.sent.append(event)

    def close(self, timeout: float, wait_failing: bool = True) -> bool:
        assert wait_failing is False  # a command never waits for a sink that fails
        return True


def test_around_tells_ok_or_the_failure_and_raises_it_again() -> None:
    notices = Notices.__new__(Notices)
    notices.notifier = Kept()  # type: ignore[assignment]
    assert notices.around("rollback", "/web", ("v2", "v1"), lambda: 7) == 7

    def fails() -> None:
        raise Failure("/web: not healthy within 60s")

    with pytest.raises(Failure):
        notices.around("rollback", "/web", ("v2", "v1"), fails)
    sent = notices.notifier.sent  # type: ignore[union-attr]
    assert [(e.kind, e.result, e.versions) for e in sent] == [("rollback", "ok", ("v2", "v1")),
                                                              ("rollback", "failed", ("v2", "v1"))]
    assert sent[1].message == "/web: not healthy within 60s"


def test_a_mistyped_webhook_is_refused_without_repeating_it() -> None:
    from click.testing import CliRunner

    from wharf.cli import cli

    done = CliRunner(env={"WHARF_NOTIFY_WEBHOOK": "hooks.slack.com/services/T0/B0/XsecretX"}).invoke(
        cli, ["config", "show"])
    assert done.exit_code == 2 and "WHARF_NOTIFY_WEBHOOK" in done.output and "XsecretX" not in done.output


def test_a_webhooks_path_is_redacted_from_the_logs() -> None:
    from wharf.settings import load

    found = load({}, {"WHARF_NOTIFY_WEBHOOK": "https://hooks.example/services/T0/B0/XsecretX,http://127.0.0.1:9/h"},
                 None)
    assert "/services/T0/B0/XsecretX" in found.secrets()
    assert "/h" not in found.secrets()  # too short to hold a token: masking it would mangle every log line
