"""The autoscaler's scale-down drains before it kills: it goes through `wharf.drain` on a thread of
its own, the app counts as deploying until that is done, and a drain that fails is logged while
the other apps go on."""

from __future__ import annotations

import logging
import threading

import pytest

from autoscale.daemon import Autoscaler
from autoscale.marathon import MarathonApps, ScaledApp
from autoscale.stats import StatsSource
from wharf.drain import DrainReport
from wharf.errors import Failure
from wharf.log import fields_of

pytestmark = pytest.mark.unit
LABELS = {"wharf.autoscale.target_rps": "100", "wharf.autoscale.scale_down_stabilization": "0"}


def stats(total: int, rate: float) -> str:
    rows = [f"{name}_10000,BACKEND,0,0,1,2,,{total},{rate:g},{rate:g},{total},1" for name in ("web", "api")]
    return "# pxname,svname,qcur,qmax,scur,smax,slim,stot,rate,req_rate,req_tot,type\n" + "\n".join(rows) + "\n"


class Apps:
    def __init__(self) -> None:
        self.scaled: list[tuple[str, int]] = []
        self.instances = {"/web": 10, "/api": 10}

    def apps(self) -> list[ScaledApp]:
        return [ScaledApp(app_id, n, LABELS, (10000,), healthy=n) for app_id, n in self.instances.items()]

    def scale(self, app_id: str, instances: int) -> None:
        self.scaled.append((app_id, instances))


class Drain:
    """Records the scale-downs asked; `/api`'s fails; each holds until `release` is set."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.release = threading.Event()

    def scale_down(self, app_id: str, target: int) -> DrainReport:
        self.asked.append((app_id, target))
        self.release.wait(10)
        if app_id == "/api":
            raise Failure("POST /v2/tasks/delete: Marathon answered 503")
        return DrainReport(app_id, 10, target, killed=[f"{app_id}.{i}" for i in range(10 - target)])


def test_a_scale_down_drains_on_its_own_thread_and_holds_the_app_until_done(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.autoscale")
    now = {"t": 0.0}
    monkeypatch.setattr(StatsSource, "read", lambda self: stats(int(200 * now["t"]), 200))
    drain = Drain()
    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [StatsSource("/run/wharf-test/admin.sock")],
                        interval=60, clock=lambda: now["t"], drain=drain)  # type: ignore[arg-type]
    apps = Apps()
    daemon.marathon = apps  # type: ignore[assignment]
    for step in range(6):  # 200 rps over 10 instances: both apps shrink once the noise is known
        now["t"] = 60.0 * step
        daemon.run_cycle()
        if drain.asked:
            break
    assert sorted(a for a, _ in drain.asked) == ["/api", "/web"] and apps.scaled == []  # no plain count change
    asked = list(drain.asked)
    now["t"] += 60
    daemon.run_cycle()  # still draining: held, nothing asked twice
    assert drain.asked == asked
    drain.release.set()
    for thread in daemon.draining.values():
        thread.join(10)
    messages = {r.getMessage(): fields_of(r) for r in caplog.records}
    assert messages["drained and killed"]["app"] == "/web"
    assert messages["scale-down failed"]["app"] == "/api" and "503" in messages["scale-down failed"]["error"]
