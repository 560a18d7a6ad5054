"""`wharf autoscale run`: each cycle reads every HAProxy, decides per app, scales in Marathon."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

from prometheus_client import Counter, Gauge

from autoscale.decide import Decision, History, Reading, decide
from autoscale.marathon import MarathonApps, Scaled, select
from autoscale.policy import Policy
from autoscale.startup import Startup
from autoscale.stats import StatsSource, backend_readings, parse_stat_csv
from wharf.contracts import autoscale as autoscale_kv
from wharf.daemon import Daemon
from wharf.drain import Drain
from wharf.errors import Failure, describe
from wharf.log import fields

OBSERVED = Gauge("wharf_autoscale_observed_rps", "Requests per second seen on the app's backends", ["app"])
PER_INSTANCE = Gauge("wharf_autoscale_rps_per_instance", "Observed rps per current instance", ["app"])
TARGET = Gauge("wharf_autoscale_target_instances", "Instance count the last decision chose", ["app"])
DECISIONS = Counter("wharf_autoscale_decisions_total", "Decisions, by action", ["app", "action"])
# per app, for the alert rules (observe/rules): below its healthy minimum, held at its maximum
INSTANCES = Gauge("wharf_autoscale_app_instances", "Instances the app asks Marathon for", ["app"])
HEALTHY = Gauge("wharf_autoscale_app_healthy_instances",
                "Instances Marathon counts healthy (running, for an app without health checks)", ["app"])
MIN = Gauge("wharf_autoscale_app_min_instances", "The fewest instances the app's policy allows", ["app"])
MAX = Gauge("wharf_autoscale_app_max_instances", "The most instances the app's policy allows (+Inf: no bound)",
            ["app"])
PINNED = Gauge("wharf_autoscale_app_pinned", "1 while the app is held at its maximum but would grow", ["app"])
APP_GAUGES = (INSTANCES, HEALTHY, MIN, MAX, PINNED)


def record_of(item: Scaled, decision: Decision, action: str) -> dict[str, Any]:
    """The decision as stored in Consul KV (`wharf.contracts.autoscale.record`)."""
    policy = item.policy
    return autoscale_kv.record(
        app=item.app.id, at=time.time(), action=action, current=decision.current, target=decision.target,
        recommendation=decision.recommendation, min=policy.min_instances, max=policy.max_instances,
        rps=None if decision.rps is None else round(decision.rps, 2), target_rps=policy.target_rps,
        reason=decision.reason)


def action_of(decision: Decision) -> str:
    """up, down, hold, or skip (no decision: deployment or no stats)."""
    if decision.target > decision.current:
        return "up"
    if decision.target < decision.current:
        return "down"
    return "skip" if decision.rps is None else "hold"


class Autoscaler(Daemon):
    """The daemon: thin I/O around `read_all` → `select` → `decide` → `MarathonApps.scale`."""

    def __init__(self, marathon: MarathonApps, sources: Sequence[StatsSource], apps: Sequence[str] = (),
                 policy: Policy | Mapping[str, Any] | None = None, interval: float = 60.0,
                 metrics_port: int | None = None, dry_run: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 on_decision: Callable[[Scaled, Decision], None] | None = None, drain: Drain | None = None,
                 publish: Callable[[str, str], None] | None = None) -> None:
        """`policy` is the command line's, whole or only the fields it sets; apps' labels override it.
        With `drain`, a scale-down drains the tasks it removes before they are killed (in the
        background: the app counts as deploying until it is done); without, it lowers the count.
        `publish(key, json)` stores each decision (`wharf.contracts.autoscale_kv`, in Consul KV)."""
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval:g}")
        super().__init__("autoscale", metrics_port)
        self.marathon, self.sources, self.names, self.policy = marathon, list(sources), list(apps), policy
        self.interval, self.dry_run, self.clock, self.on_decision = interval, dry_run, clock, on_decision
        self.readings: dict[str, list[Reading]] = {}  # source#backend -> its last two readings
        self.history: dict[str, History] = {}
        self.startup: dict[str, Startup] = {}  # app id -> its startup delay, learned from Marathon
        self._missing_reported: set[str] = set()
        self.drain = drain
        self.draining: dict[str, threading.Thread] = {}  # app id -> its drain before kill
        self.publish = publish
        self._publish_failed = False
        self._gauged: set[str] = set()  # the apps whose gauges are set

    def read_all(self) -> None:
        """Read every HAProxy; keep each backend's last two readings. Fails only if none answers."""
        now, answered, errors = self.clock(), set(), []
        for source in [address for given in self.sources for address in given.addresses()]:
            try:
                text = source.read()
            except Failure as exc:
                errors.append(str(exc))
                continue
            answered.add(source.name)
            for reading in backend_readings(parse_stat_csv(text), source.name, now).values():
                self.readings[reading.source] = [*self.readings.get(reading.source, [])[-1:], reading]
        if errors:
            self.log.warning("haproxy unreachable", extra=fields(errors="; ".join(errors)))
        if not answered:
            raise Failure("no HAProxy answered: " + "; ".join(errors))
        # a source that did not answer this cycle must not count with stale figures
        for key in [k for k in self.readings if k.split("#", 1)[0] not in answered]:
            del self.readings[key]

    def _drain_down(self, app_id: str, target: int) -> None:
        """Scale `app_id` down to `target` through the drain, on a thread of its own."""
        assert self.drain is not None
        drain = self.drain

        def run() -> None:
            try:
                report = drain.scale_down(app_id, target)
                self.log.info("drained and killed", extra=fields(app=app_id, killed=len(report.killed),
                                                                 waited=round(report.waited, 2),
                                                                 timed_out=report.timed_out))
            except Exception as exc:  # noqa: BLE001 - one app's failed drain never stops the others
                self.log.error("scale-down failed", extra=fields(app=app_id, error=describe(exc)))
        thread = threading.Thread(target=run, name=f"drain {app_id}", daemon=True)
        self.draining[app_id] = thread
        thread.start()

    def readings_for(self, backends: Sequence[str]) -> list[Reading]:
        wanted = set(backends)
        return [r for key, series in self.readings.items() if key.split("#", 1)[1] in wanted for r in series]

    def run_cycle(self) -> None:
        self.read_all()
        selection = select(self.marathon.apps(), self.names, self.policy)
        for name in set(selection.missing) - self._missing_reported:
            self.log.warning("no Marathon app for --apps name", extra=fields(backend=name))
        for problem in set(selection.problems) - self._missing_reported:
            self.log.warning("app not scaled", extra=fields(problem=problem))
        self._missing_reported = set(selection.missing) | set(selection.problems)
        now = self.clock()
        for item in selection.scaled:
            app = item.app
            startup = self.startup.get(app.id, Startup()).observe(now, app.instances, app.healthy)
            draining = app.id in self.draining and self.draining[app.id].is_alive()
            decision = decide(self.readings_for(item.backends), app.instances, item.policy, now,
                              self.history.get(app.id, History()), deploying=app.deploying or draining,
                              startup=startup.seconds)
            action = action_of(decision)
            DECISIONS.labels(app.id, action).inc()
            TARGET.labels(app.id).set(decision.target)
            if decision.rps is not None:
                OBSERVED.labels(app.id).set(decision.rps)
                PER_INSTANCE.labels(app.id).set(decision.per_instance or 0.0)
            what = fields(app=app.id, action=action, current=app.instances, target=decision.target,
                          rps=None if decision.rps is None else round(decision.rps, 1),
                          projected=None if decision.projected is None else round(decision.projected, 1),
                          startup=None if startup.seconds is None else round(startup.seconds, 1),
                          reason=decision.reason)
            if decision.target != app.instances:
                if self.dry_run:
                    pass
                elif self.drain is not None and decision.target < app.instances:
                    self._drain_down(app.id, decision.target)
                else:
                    self.marathon.scale(app.id, decision.target)
                    startup = startup.asked(now, decision.target, app.instances)
                self.log.info("scaled" if not self.dry_run else "would scale", extra=what)
            else:
                self.log.info("decided", extra=what)
            self.history[app.id] = decision.history
            self.startup[app.id] = startup
            data = record_of(item, decision, action)
            self._gauges(item, data)
            self._publish(item, data)
            if self.on_decision is not None:
                self.on_decision(item, decision)
        self._forget_gauges({item.app.id for item in selection.scaled})

    def _gauges(self, item: Scaled, data: Mapping[str, Any]) -> None:
        """The app's counts, bounds and whether it is pinned at its maximum, as gauges."""
        app_id, healthy = item.app.id, item.app.healthy
        INSTANCES.labels(app_id).set(item.app.instances)
        if healthy is None:  # Marathon did not say: no figure rather than a wrong one
            with suppress(KeyError):
                HEALTHY.remove(app_id)
        else:
            HEALTHY.labels(app_id).set(healthy)
        MIN.labels(app_id).set(item.policy.min_instances)
        top = item.policy.max_instances
        MAX.labels(app_id).set(float("inf") if top is None else top)
        PINNED.labels(app_id).set(1 if autoscale_kv.pinned(data) else 0)
        self._gauged.add(app_id)

    def _forget_gauges(self, scaled: set[str]) -> None:
        """Drop the gauges of apps no longer scaled (deleted, or their labels gone): no alert on a ghost."""
        for app_id in self._gauged - scaled:
            for gauge in APP_GAUGES:
                with suppress(KeyError):
                    gauge.remove(app_id)
        self._gauged &= scaled

    def _publish(self, item: Scaled, data: Mapping[str, Any]) -> None:
        """Store the decision for `wharf trace`; a store that fails is logged once, never fatal."""
        if self.publish is None:
            return
        try:
            self.publish(autoscale_kv.key(item.app.id), json.dumps(data))
            self._publish_failed = False
        except Exception as exc:  # noqa: BLE001 - the decision stands; only its record is missing
            if not self._publish_failed:
                self.log.warning("decision not stored", extra=fields(app=item.app.id, error=describe(exc)))
            self._publish_failed = True
