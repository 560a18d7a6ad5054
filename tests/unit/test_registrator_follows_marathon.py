"""The registrator follows Marathon's view of its tasks: health (registered again, passing) and kills."""

from __future__ import annotations

import queue
from typing import Any

from registrator.marathon import healthy_tasks
from registrator.model import DockerContainer
from registrator.watch import MarathonWatcher
from registrator.worker import MarathonHealth, Registrator, TaskKilling
from tests.unit.test_registrator_services import OPTS, marathon_task
from wharf.marathon import MarathonError

APP = {"id": "/shop/web", "portDefinitions": [{"port": 10010}],
       "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}]}
TASK = "shop_web.instance-1234._app.1"


def test_healthy_means_every_result_alive_and_at_least_one() -> None:
    tasks = [{"id": "a1", "appId": "/a", "healthCheckResults": [{"alive": True}, {"alive": True}]},
             {"id": "a2", "appId": "/a", "healthCheckResults": [{"alive": True}, {"alive": False}]},
             {"id": "a3", "appId": "/a", "healthCheckResults": []},  # not checked yet
             {"id": "b1", "appId": "/b"},  # an app without health checks: Consul's checks decide
             {"id": "c1", "appId": "/c", "healthCheckResults": ["odd", {"alive": True}]},
             {"appId": "/d", "healthCheckResults": [{"alive": True}]}]  # no id: skipped
    assert healthy_tasks(tasks) == {"/a": frozenset({"a1"}), "/c": frozenset({"c1"})}


def registrator_with_task() -> tuple[Registrator, str]:
    reg = Registrator(OPTS, docker=None, agent=None, lookup=lambda c: APP)
    container = DockerContainer.from_inspect(marathon_task([32000], {}))
    reg.containers[container.id] = container
    return reg, container.id


def statuses(reg: Registrator, cid: str) -> list[str]:
    return [dict(check)["Status"] for r in reg.wanted(reg.containers[cid]) for check in r.checks]


def test_a_task_marathon_counts_healthy_is_wanted_passing_and_touched_once() -> None:
    reg, cid = registrator_with_task()
    assert statuses(reg, cid) == ["critical"]
    reg.on_marathon(MarathonHealth({"/other": frozenset({"x"})}))
    assert not reg.touched  # another app's health touches nothing here
    reg.on_marathon(MarathonHealth({"/shop/web": frozenset({TASK})}))
    assert statuses(reg, cid) == ["passing"] and cid in reg.touched
    reg.touched.clear()
    reg.on_marathon(MarathonHealth({"/shop/web": frozenset({TASK})}, whole=True))
    assert not reg.touched  # the same view again changes nothing
    reg.on_marathon(MarathonHealth({}, whole=True))  # reconnected: nothing healthy any more
    assert statuses(reg, cid) == ["critical"] and cid in reg.touched


def test_task_killing_drains_that_task_only_and_once() -> None:
    reg, cid = registrator_with_task()
    reg.on_marathon(TaskKilling("some_other_task"))
    assert not reg.draining
    reg.on_marathon(TaskKilling(TASK))
    assert cid in reg.draining and all(r.drained for r in reg.wanted(reg.containers[cid]))
    until = reg.draining[cid]
    reg.on_marathon(TaskKilling(TASK))  # Docker's kill or a repeat does not extend the drain
    assert reg.draining[cid] == until


class FakeMarathon:
    shown = "http://marathon.test:8080"

    def __init__(self, tasks: dict[str, list[dict[str, Any]]], failing: bool = False) -> None:
        self.by_app, self.failing, self.asked = tasks, failing, []

    def tasks(self, app_id: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(app_id)
        if self.failing:
            raise MarathonError("GET /v2/apps//shop/web/tasks: Marathon answered 404: app not found", 404, None)
        return [t for a, ts in self.by_app.items() if app_id in (None, a) for t in ts]


def drained(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_the_watcher_reads_only_apps_with_a_task_here_and_skips_a_failed_read() -> None:
    reg, _ = registrator_with_task()
    reg.apps = frozenset({"/shop/web"})
    alive = [{"alive": True}]
    marathon = FakeMarathon({"/shop/web": [{"id": TASK, "appId": "/shop/web", "healthCheckResults": alive}],
                             "/elsewhere": [{"id": "e1", "appId": "/elsewhere", "healthCheckResults": alive}]})
    watcher = MarathonWatcher(reg, marathon)  # type: ignore[arg-type]
    watcher._connected(False)
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/elsewhere", "alive": True})
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/shop/web", "alive": True})
    watcher._handle({"eventType": "status_update_event", "taskStatus": "TASK_KILLING", "taskId": TASK})
    watcher._handle({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": TASK})
    assert marathon.asked == [None, "/shop/web"]
    assert drained(reg.queue) == [
        MarathonHealth({"/shop/web": frozenset({TASK}), "/elsewhere": frozenset({"e1"})}, whole=True),
        MarathonHealth({"/shop/web": frozenset({TASK})}), TaskKilling(TASK)]
    marathon.failing = True  # the app removed between the event and the read: logged, skipped, no raise
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/shop/web", "alive": False})
    assert drained(reg.queue) == []
