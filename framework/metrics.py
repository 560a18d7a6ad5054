"""Prometheus metrics of `wharf framework run`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OFFERS = Counter("wharf_framework_offers_total", "Offers received, by what became of them", ["outcome"])
LAUNCHED = Counter("wharf_framework_tasks_launched_total", "Task launches sent to the master (ACCEPT)")
UPDATES = Counter("wharf_framework_status_updates_total", "Status updates received, by Mesos state", ["state"])
TASKS = Gauge("wharf_framework_tasks", "Tasks the leader knows, by state", ["state"])
TO_RUNNING = Histogram("wharf_framework_submit_to_running_seconds", "Time from submit to the first RUNNING",
                       buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))
LEADER = Gauge("wharf_framework_leader", "1 while this scheduler is the elected leader")
SUBSCRIBED = Gauge("wharf_framework_subscribed", "1 while the leader is subscribed to the master")
RECONCILING = Gauge("wharf_framework_reconciling_tasks", "Launched tasks the master has not yet answered for")
SUPPRESSED = Gauge("wharf_framework_offers_suppressed", "1 while offers are suppressed (nothing queued)")
FAILOVERS = Counter("wharf_framework_leadership_total", "Times this scheduler became the leader")
LOOP_SECONDS = Counter("wharf_framework_loop_seconds_total",
                       "Time the leader's loop spent: deciding, storing in ZooKeeper, calling the master",
                       ["phase"])
