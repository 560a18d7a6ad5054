"""Drain before kill: which tasks go, when they count as drained, and the loop around Marathon,
Consul and HAProxy (fakes that record what was asked of them, on a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from wharf.drain import Drain, choose, settled, tracked
from wharf.errors import Failure, Unreachable
from wharf.haproxy import parse_stat_csv

pytestmark = pytest.mark.unit

HEADER = "# pxname,svname,scur,status,addr\n"


def stat(*servers: tuple[str, int, str, str]) -> str:
    """A `show stat` CSV of backend `web` with these (server, sessions, status, addr)."""
    lines = [f"web,{name},{scur},{status},{addr}" for name, scur, status, addr in servers]
    return HEADER + "\n".join(["web,FRONTEND,0,OPEN,", *lines, "web,BACKEND,0,UP,"]) + "\n"


def task(n: int, started: str, state: str = "TASK_RUNNING", alive: bool | None = True) -> dict[str, Any]:
    return {"id": f"web.{n}", "appId": "/web", "host": "127.0.0.1", "ports": [31000 + n], "state": state,
            "startedAt": started, "healthCheckResults": [] if alive is None else [{"alive": alive}]}


# --- choosing ------------------------------------------------------------------------------------

def test_choose_takes_the_not_running_then_the_unhealthy_then_by_kill_selection() -> None:
    tasks = [task(1, "2026-01-01"), task(2, "2026-01-03"), task(3, "2026-01-02"),
             task(4, "2026-01-04", alive=False), task(5, "", state="TASK_STAGING", alive=None)]
    assert [t["id"] for t in choose(tasks, 3)] == ["web.5", "web.4", "web.2"]
    assert [t["id"] for t in choose(tasks, 3, "OLDEST_FIRST")] == ["web.5", "web.4", "web.1"]
    assert choose(tasks, 0) == [] and len(choose(tasks, 9)) == 5


# --- drained or not -------------------------------------------------------------------------------

def test_a_server_is_drained_once_out_of_rotation_with_no_session() -> None:
    going = {"127.0.0.1:31001"}
    before = parse_stat_csv(stat(("slot1", 2, "UP", "127.0.0.1:31001"), ("slot2", 5, "UP", "127.0.0.1:31002")))
    watched = tracked(before, going)
    assert watched == {("web", "slot1")}
    assert not settled(before, watched, going)  # the drain has not reached HAProxy
    maint_busy = parse_stat_csv(stat(("slot1", 2, "MAINT", "127.0.0.1:31001")))
    assert not settled(maint_busy, watched, going)  # out of rotation, sessions still running
    assert settled(parse_stat_csv(stat(("slot1", 0, "MAINT", "127.0.0.1:31001"))), watched, going)
    # the renderer empties the slot (points it at the spare address): out, once its sessions end
    assert not settled(parse_stat_csv(stat(("slot1", 1, "UP", "127.0.0.1:1"))), watched, going)
    assert settled(parse_stat_csv(stat(("slot1", 0, "MAINT", "127.0.0.1:1"))), watched, going)
    assert settled(parse_stat_csv(HEADER), watched, going)  # a reload took the backend away


# --- the loop -------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeMarathon:
    def __init__(self, tasks: list[dict[str, Any]], instances: int) -> None:
        self.tasks_now, self.instances, self.kills, self.refuse = tasks, instances, [], False
        self.died_meanwhile: list[str] = []

    def app(self, app_id: str) -> dict[str, Any]:
        return {"id": "/web", "instances": self.instances, "killSelection": "YOUNGEST_FIRST"}

    def tasks(self, app_id: str) -> list[dict[str, Any]]:
        return list(self.tasks_now)

    def kill_tasks(self, ids: list[str], scale: bool = False) -> str:
        if self.refuse:
            raise Failure("POST /v2/tasks/delete: Marathon answered 503")
        assert scale
        for gone in self.died_meanwhile:  # died on its own while draining: Marathon replaced it
            self.tasks_now = [t for t in self.tasks_now if t["id"] != gone] + [task(9, "2026-02-01")]
        self.died_meanwhile = []
        known = [i for i in ids if any(t["id"] == i for t in self.tasks_now)]
        self.kills.append(known)
        self.tasks_now = [t for t in self.tasks_now if t["id"] not in known]
        self.instances -= len(known)
        return f"deploy-{len(self.kills)}"

    def scale(self, app_id: str, n: int) -> str:
        self.instances = n
        return "deploy-scale"


class FakeConsul:
    """`health.service` and `agent.service.maintenance` of py-consul, recording maintenance calls."""

    def __init__(self, marathon: FakeMarathon) -> None:
        self.marathon, self.calls = marathon, []
        self.health, self.agent = self, self
        self.service = self

    def __call__(self, name: str) -> tuple[int, list[dict[str, Any]]]:  # health.service(name)
        return 1, [{"Node": {"Node": "n1", "Address": "127.0.0.1"},
                    "Service": {"ID": f"n1:{t['id']}", "Meta": {"mesos_task_id": t["id"]}}}
                   for t in self.marathon.tasks_now]

    def maintenance(self, service_id: str, enable: str, reason: str | None = None) -> None:
        self.calls.append((service_id, enable))




class Stats:
    """An HAProxy stats source whose answers follow a script: each read takes the next one."""

    name = "/run/haproxy.sock"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)

    def read(self) -> str:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def setup(*answers: str | Exception, timeout: float = 30.0) -> tuple[Drain, FakeMarathon, FakeConsul, Clock]:
    marathon = FakeMarathon([task(1, "2026-01-01"), task(2, "2026-01-02"), task(3, "2026-01-03")], 3)
    consul = FakeConsul(marathon)
    clock = Clock()
    drain = Drain(marathon, consul, [Stats(*answers)] if answers else [], timeout, clock=clock, sleep=clock.sleep)
    return drain, marathon, consul, clock


UP = stat(("slot1", 0, "UP", "127.0.0.1:31001"), ("slot2", 3, "UP", "127.0.0.1:31002"),
          ("slot3", 4, "UP", "127.0.0.1:31003"))
BUSY = stat(("slot1", 0, "UP", "127.0.0.1:31001"), ("slot2", 3, "MAINT", "127.0.0.1:31002"),
            ("slot3", 1, "MAINT", "127.0.0.1:31003"))
DONE = stat(("slot1", 0, "UP", "127.0.0.1:31001"), ("slot2", 0, "MAINT", "127.0.0.1:1"),
            ("slot3", 0, "MAINT", "127.0.0.1:31003"))


def test_the_drained_tasks_are_the_killed_ones_and_the_kill_waits_for_the_drain() -> None:
    drain, marathon, consul, clock = setup(UP, UP, BUSY, BUSY, DONE)
    report = drain.scale_down("/web", 1)
    assert sorted(consul.calls) == [("n1:web.2", "true"), ("n1:web.3", "true")]  # the youngest two
    assert marathon.kills == [["web.3", "web.2"]] and marathon.instances == 1
    assert report.killed == ["web.3", "web.2"] and not report.timed_out and report.watched == 2
    assert report.waited == pytest.approx(clock.now) and clock.now > 0  # it waited for DONE
    assert report.as_json()["deployment"] == "deploy-1"


def test_the_drain_timeout_kills_anyway_and_says_so() -> None:
    drain, marathon, _, clock = setup(UP, BUSY, timeout=1.0)
    report = drain.scale_down("/web", 2)
    assert report.timed_out and report.waited >= 1.0 and marathon.kills == [["web.3"]]


def test_an_unreadable_haproxy_is_not_taken_for_drained() -> None:
    drain, marathon, _, _ = setup(UP, Unreachable("HAProxy", "/run/haproxy.sock", "refused"), timeout=0.5)
    report = drain.scale_down("/web", 2)
    assert report.timed_out and marathon.kills == [["web.3"]]


def test_a_refused_kill_lifts_the_maintenance_it_set() -> None:
    drain, marathon, consul, _ = setup(UP, DONE)
    marathon.refuse = True
    with pytest.raises(Failure, match="503"):
        drain.scale_down("/web", 1)
    assert sorted(consul.calls[:2]) == [("n1:web.2", "true"), ("n1:web.3", "true")]
    assert sorted(consul.calls[2:]) == [("n1:web.2", "false"), ("n1:web.3", "false")]
    assert marathon.instances == 3 and marathon.kills == []


def test_a_task_that_died_meanwhile_is_gone_and_another_round_reaches_the_target() -> None:
    drain, marathon, consul, _ = setup(UP, DONE)
    marathon.died_meanwhile = ["web.3"]  # replaced by web.9 before the kill lands
    report = drain.scale_down("/web", 2)
    assert marathon.instances == 2
    assert marathon.kills == [[], ["web.9"]]  # nothing else of the app was touched
    assert report.killed == ["web.3", "web.9"]


def test_without_an_haproxy_to_watch_the_kill_follows_the_maintenance_shortly() -> None:
    drain, marathon, consul, clock = setup()
    report = drain.scale_down("/web", 2)
    assert consul.calls == [("n1:web.3", "true")] and marathon.kills == [["web.3"]]
    assert clock.now == 2.0 and report.watched == 0


def test_an_unreachable_consul_is_named_and_nothing_is_killed() -> None:
    import requests

    drain, marathon, consul, _ = setup(UP, DONE)

    def refused(name: str) -> None:
        raise requests.ConnectionError("[Errno 111] Connection refused")
    consul.service = refused  # type: ignore[method-assign]
    with pytest.raises(Unreachable, match="cannot reach Consul"):
        drain.scale_down("/web", 1)
    assert marathon.kills == [] and marathon.instances == 3


def test_instances_still_to_launch_go_first_by_lowering_the_count() -> None:
    drain, marathon, consul, _ = setup(UP, DONE)
    marathon.instances = 5  # two of them not launched yet
    report = drain.scale_down("/web", 2)
    assert marathon.kills == [["web.3"]] and consul.calls == [("n1:web.3", "true")]  # one running drained
    assert marathon.instances == 2 and report.deployment == "deploy-scale"  # the rest by the count
