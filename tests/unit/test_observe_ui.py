"""The web view's feed and server, without a cluster: what a page is sent, when, and what it never is."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner

from observe.feed import HOUR, TraceFeed
from observe.gather import deploy_kinds
from observe.links import View
from tests.unit.test_observe_links import NOW, app, reg, row, view
from wharf.cli import cli
from wharf.errors import Failure
from wharf.haproxy import StatRow

starlette = pytest.importorskip("starlette")
pytestmark = pytest.mark.unit


def counted(rows: list[StatRow], total: int) -> list[StatRow]:
    """The HAProxy rows with `req_tot` split over the servers."""
    return [StatRow(r.pxname, r.svname, {**r.fields, "req_tot": str(total // len(rows))}) for r in rows]


def at(seconds: float, requests: int = 0, **changes: Any) -> View:
    found = view(**changes)
    found.now = NOW + seconds
    if "haproxies" not in changes:
        found.haproxies = {"socket": counted([row(1), row(2)], requests)}
    return found


def test_the_feed_goes_up_a_version_only_when_a_page_would_change() -> None:
    feed = TraceFeed()
    assert feed.update(at(0)) and feed.version == 1
    assert not feed.update(at(1)) and feed.version == 1  # same links, too soon for a new sample
    assert feed.update(at(2, apps={"/web": app(tasksHealthy=1)})) and feed.version == 2
    assert [r["app"] for r in feed.rows()["apps"]] == ["/web"]
    assert feed.rows()["apps"][0]["links"][1] == {"name": "marathon", "state": "ok",
                                                  "summary": "/web: 1/2 healthy, 2 running"}


def test_requests_per_second_come_from_haproxys_counter_and_a_restart_is_no_negative_rate() -> None:
    feed = TraceFeed()
    feed.update(at(0, 100))
    feed.update(at(10, 600))
    feed.update(at(20, 50))  # the counter went down: HAProxy restarted
    feed.update(at(30, 250))
    samples = feed.detail("/web")["history"]["samples"]
    assert [(s[0] - NOW, s[1], s[2], s[3]) for s in samples] == [
        (0, None, 2, 2), (10, 50.0, 2, 2), (20, None, 2, 2), (30, 20.0, 2, 2)]


def test_an_hour_is_kept_and_each_decision_is_marked_once() -> None:
    labels = {"wharf.commit": "3f2a9c1d00000000", "wharf.autoscale.target_rps": "10"}
    decision = {"app": "/web", "at": NOW + 5, "action": "up", "current": 2, "target": 3, "reason": "busy",
                "max": 5, "recommendation": 3}
    feed = TraceFeed()
    for second in range(0, int(HOUR) + 60, 30):
        feed.update(at(second, apps={"/web": app(labels=labels)}, decisions={"/web": decision}))
    history = feed.detail("/web")["history"]
    assert history["decisions"] == []  # its moment is more than an hour ago
    assert min(s[0] for s in history["samples"]) == NOW + 30  # the last update was at 3,630 s
    feed.update(at(HOUR + 90, apps={"/web": app(labels=labels)}, decisions={"/web": {**decision, "at": NOW + HOUR}}))
    feed.update(at(HOUR + 120, apps={"/web": app(labels=labels)}, decisions={"/web": {**decision, "at": NOW + HOUR}}))
    assert [d["at"] for d in feed.detail("/web")["history"]["decisions"]] == [NOW + HOUR]


def test_a_failed_read_keeps_the_last_state_and_an_app_gone_is_dropped() -> None:
    feed = TraceFeed()
    feed.update(at(0))
    assert feed.failed("Marathon at http://127.0.0.1:1: connection refused") and feed.version == 2
    assert feed.rows()["error"].startswith("Marathon at") and feed.rows()["apps"][0]["app"] == "/web"
    assert not feed.failed("Marathon at http://127.0.0.1:1: connection refused")  # said already
    feed.update(at(1, apps={}, registrations=[]))
    assert feed.rows() == {"version": 3, "read_at": NOW + 1, "error": None, "apps": []}
    assert feed.detail("/web")["trace"] is None and feed.histories == {}


def test_deploy_history_names_deploys_rollbacks_and_scales() -> None:
    def version(when: str, commit: str, instances: int = 2, image: str = "web:1") -> dict[str, Any]:
        return {"id": "/web", "version": when, "instances": instances, "labels": {"wharf.commit": commit},
                "container": {"docker": {"image": image}}}
    newest_first = [version("5", "aaa", 2), version("4", "aaa", 3), version("3", "bbb", 3, "web:2"),
                    version("2", "aaa", 3), version("1", "aaa", 3, "web:0")]
    assert [(e["version"], e["kind"]) for e in deploy_kinds(newest_first)] == [
        ("5", "scale"), ("4", "rollback"), ("3", "deploy"), ("2", "change"), ("1", "deploy")]
    assert deploy_kinds([version("1", "aaa")])[0]["image"] == "web:1"


class FakeMarathon:
    shown = "http://127.0.0.1:8080"


def live(read: Any, deploys: Any = None) -> Any:
    from observe.ui import Live
    return Live(read, 0.1, deploys)


def test_the_server_sends_the_list_and_an_apps_page_and_nothing_else() -> None:
    from starlette.testclient import TestClient

    from observe.ui import make_app

    served = live(lambda: at(0), lambda ids: [{"app": ids[0], "version": "v", "kind": "deploy"}])
    with TestClient(make_app(served)) as client:
        assert "<script src=\"/static/app.js\"" in client.get("/").text
        assert client.get("/apps/group/web").status_code == 200  # the same page: the script reads the path
        assert "EventSource" in client.get("/static/app.js").text
        first = client.get("/api/view").json()
        assert first["apps"][0]["app"] == "/web" and first["error"] is None
        assert client.get("/api/view", params={"app": "/web"}).json()["trace"]["app"] == "/web"
        assert client.get("/api/deploys", params={"app": "/web"}).json() == [
            {"app": "/web", "version": "v", "kind": "deploy"}]
        assert client.get("/api/deploys", params={"app": "/nope"}).status_code == 404
        assert client.post("/api/view").status_code == 405  # read-only
        assert "wharf_ui_reads_total" in client.get("/metrics").text


def test_marathon_restarting_shows_on_the_page_then_clears() -> None:
    from observe.ui import Live

    answers: list[Any] = [at(0), Failure("Marathon at http://127.0.0.1:1: connection refused (is it running?)"),
                          at(1, apps={"/web": app(tasksHealthy=1)})]

    def read() -> View:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    served: Live = live(read)
    assert served.refresh() and served.refresh()
    shown = json.loads(served.payload(None))
    assert shown["error"].startswith("Marathon at http://127.0.0.1:1") and shown["apps"][0]["app"] == "/web"
    assert served.refresh()
    shown = json.loads(served.payload(None))
    assert shown["error"] is None and "1/2 healthy" in shown["apps"][0]["links"][1]["summary"]


def test_a_stream_sends_at_once_then_only_changes() -> None:
    served = live(lambda: at(0))
    served.refresh()

    class Request:
        calls = 0

        async def is_disconnected(self) -> bool:
            self.calls += 1
            return self.calls > 2

    async def take() -> list[str]:
        stream = served.stream(Request(), None)  # type: ignore[arg-type]
        first = await stream.__anext__()
        served.feed.update(at(5, apps={"/web": app(tasksHealthy=0)}))
        served.changes.fire()
        second = await asyncio.wait_for(stream.__anext__(), 2)
        return [first, second]

    first, second = asyncio.run(take())
    assert first.startswith("data: ") and second.startswith("data: ")
    assert "0/2 healthy" in json.loads(second[6:])["apps"][0]["links"][1]["summary"]


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.1:70000", ":80", "host:port"])
def test_ui_refuses_a_bad_listen_in_one_line(listen: str) -> None:
    done = CliRunner().invoke(cli, ["--marathon-url", "http://127.0.0.1:1", "ui", "--listen", listen])
    assert done.exit_code == 2 and "--listen" in done.output and done.output.strip().count("\n") == 0


def test_an_apps_environment_never_reaches_the_page() -> None:
    secret = "s3cret-value"
    found = at(0, registrations=[reg(1), reg(2)])
    found.apps = {"/web": app(env={"DB_PASSWORD": secret}, labels={"wharf.commit": "abc"})}
    feed = TraceFeed()
    feed.update(found)
    assert secret not in json.dumps(feed.rows()) + json.dumps(feed.detail("/web"))


def test_consuls_changes_poke_the_feed_and_a_timeout_does_not() -> None:
    from observe.ui import consul_watches

    class Reader:
        base_uri = "http://127.0.0.1:8500"

        def __init__(self) -> None:
            self.indexes = ["7", "7", "9"]
            self.asked: list[list[tuple[str, str]]] = []

        def raw(self, path: str, params: list[tuple[str, str]]) -> tuple[int, dict[str, str], bytes]:
            self.asked.append(params)
            return 200, {"X-Consul-Index": self.indexes.pop(0)}, b"[]"

    reader, pokes = Reader(), []
    watch = consul_watches(reader, lambda name, kind: pokes.append(kind))[0]
    for _ in range(3):
        watch.step()
    assert pokes == ["change", "change"]  # 0 -> 7, then 7 again is a timeout, then 9
    assert [dict(p)["index"] for p in reader.asked] == ["0", "7", "7"] and dict(reader.asked[0])["wait"] == "30s"
