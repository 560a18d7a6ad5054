"""The registrator follows Marathon's view of its tasks: health (registered again, passing) and kills."""

from __future__ import annotations

import queue
import time
from typing import Any

from registrator.marathon import MarathonHealth, TaskKilling, counted_healthy, healthy_tasks
from registrator.model import DockerContainer
from registrator.watch import MarathonWatcher
from registrator.worker import Registrator
from tests.unit.test_registrator_services import OPTS, marathon_task

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
    reg.on_marathon(MarathonHealth(app_id="/other", task="x", alive=True))
    assert not reg.touched  # another app's health touches nothing here
    reg.on_marathon(MarathonHealth(app_id="/shop/web", task="shop_web.instance-1234", alive=True))  # 1.4+
    assert statuses(reg, cid) == ["passing"] and cid in reg.touched
    reg.touched.clear()
    reg.on_marathon(MarathonHealth(app_id="/shop/web", task="shop_web.instance-1234", alive=False))
    assert statuses(reg, cid) == ["critical"] and cid in reg.touched
    reg.on_marathon(MarathonHealth(app_id="/shop/web", task=TASK, alive=True))  # a task id, as before 1.4
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

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.all, self.asked = tasks, 0

    def tasks(self, app_id: str | None = None) -> list[dict[str, Any]]:
        self.asked += 1
        return self.all


def drained(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def test_the_watcher_queues_health_and_kills_in_marathons_order_for_apps_here_only() -> None:
    reg, _ = registrator_with_task()
    reg.apps = frozenset({"/shop/web"})
    alive = [{"alive": True}]
    marathon = FakeMarathon([{"id": TASK, "appId": "/shop/web", "healthCheckResults": alive},
                             {"id": "e1", "appId": "/elsewhere", "healthCheckResults": alive}])
    watcher = MarathonWatcher(reg, marathon)  # type: ignore[arg-type]
    watcher._connected(False)
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/elsewhere", "taskId": "e1", "alive": True})
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/shop/web", "instanceId": "new.i",
                     "alive": True})
    watcher._handle({"eventType": "status_update_event", "taskStatus": "TASK_KILLING", "taskId": TASK})
    watcher._handle({"eventType": "status_update_event", "taskStatus": "TASK_RUNNING", "taskId": TASK})
    watcher._handle({"eventType": "health_status_changed_event", "appId": "/shop/web", "alive": True})  # no id
    assert marathon.asked == 1  # once on connecting; events carry what they say
    assert drained(reg.queue) == [
        MarathonHealth({"/shop/web": frozenset({TASK}), "/elsewhere": frozenset({"e1"})}, whole=True),
        MarathonHealth(app_id="/shop/web", task="new.i", alive=True), TaskKilling(TASK)]


def test_a_task_counts_healthy_by_its_id_or_its_instances() -> None:
    assert counted_healthy("web.instance-1._app.2", frozenset({"web.instance-1"}))
    assert counted_healthy("web.5e1f", frozenset({"web.marathon-5e1f"}))  # 1.4's instance of an older task
    assert counted_healthy("web.5e1f", frozenset({"web.5e1f"}))
    assert not counted_healthy("web.instance-10._app.1", frozenset({"web.instance-1"}))
    assert not counted_healthy("", frozenset({"web.instance-1"})) and not counted_healthy("web.1", frozenset())


class SlowCatalog:
    """An agent whose catalog holds a registration only after `after` asks."""

    def __init__(self, after: int) -> None:
        self.after, self.asked = after, 0

    def in_catalog(self, regs: Any) -> set[str]:
        self.asked += 1
        return {r.id for r in regs} if self.asked > self.after else set()


def test_instances_found_healthy_reach_the_catalog_before_the_worker_goes_on_and_the_wait_is_bounded() -> None:
    reg, cid = registrator_with_task()
    reg.on_marathon(MarathonHealth(app_id="/shop/web", task=TASK, alive=True))
    ready = reg.wanted(reg.containers[cid])
    reg.agent = SlowCatalog(after=3)  # type: ignore[assignment]
    reg._confirm(ready)
    assert reg.agent.asked == 4  # type: ignore[attr-defined]
    reg.agent = SlowCatalog(after=10**9)  # type: ignore[assignment]
    started = time.monotonic()
    reg._confirm(ready, limit=0.05)
    assert time.monotonic() - started < 1.0  # never in the catalog: gives up, the drain still comes
