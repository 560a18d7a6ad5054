"""Read-only views of the master, shaped like Mesos's ``/master/state`` and ``/metrics/snapshot``."""

from __future__ import annotations

from typing import Any

from devcluster.mesos.master import Master
from devcluster.mesos.model import VERSION, Framework, Task
from devcluster.mesos.offers import AGENT_PORT, AgentInfo
from devcluster.mesos.protocol import TERMINAL_STATES
from devcluster.mesos.resources import Resources


def task_json(task: Task) -> dict[str, Any]:
    info = task.spec.info
    out: dict[str, Any] = {
        "id": task.spec.task_id, "name": task.spec.name, "framework_id": task.framework_id,
        "executor_id": "", "slave_id": task.agent_id, "state": task.state, "role": "*",
        "resources": task.spec.resources.to_state(), "statuses": list(task.history),
        "labels": [{"key": k, "value": v} for k, v in task.spec.labels],
    }
    for key in ("container", "discovery", "health_check"):
        if key in info:
            out[key] = info[key]
    return out


def framework_json(master: Master, framework: Framework) -> dict[str, Any]:
    info = framework.info
    active = framework.id in master.frameworks
    used = master.task_resources(framework.id) if active else Resources()
    offered = master.offered(framework_id=framework.id) if active else Resources()
    return {
        "id": framework.id, "name": info.get("name", ""), "user": info.get("user", ""),
        "hostname": info.get("hostname", ""), "webui_url": info.get("webui_url", ""),
        "failover_timeout": float(info.get("failover_timeout", 0.0)), "checkpoint": bool(info.get("checkpoint")),
        "role": framework.role, "roles": list(info.get("roles") or [framework.role]),
        "capabilities": [c.get("type") for c in info.get("capabilities", [])],
        "principal": info.get("principal"),
        "active": framework.connected, "connected": framework.connected, "recovered": False,
        "registered_time": framework.registered, "unregistered_time": framework.unregistered or 0.0,
        "resources": (used + offered).to_state(), "used_resources": used.to_state(),
        "offered_resources": offered.to_state(),
        "tasks": [task_json(t) for t in framework.tasks.values()],
        "unreachable_tasks": [],
        "completed_tasks": [task_json(t) for t in framework.completed],
        "offers": [{"id": o.id, "framework_id": o.framework_id, "slave_id": o.agent_id,
                    "resources": o.resources.to_state()}
                   for o in master.offers.values() if o.framework_id == framework.id],
        "executors": [], "completed_executors": [],
        "labels": (info.get("labels") or {}).get("labels", []),
    }


def agent_json(master: Master, agent: AgentInfo) -> dict[str, Any]:
    used, offered = master.used[agent.id], master.offered(agent.id)
    return {
        "id": agent.id, "pid": agent.pid, "hostname": agent.hostname, "port": AGENT_PORT,
        "registered_time": master.started, "version": VERSION, "active": True, "deactivated": False,
        "resources": agent.total.to_state(), "used_resources": used.to_state(),
        "offered_resources": offered.to_state(), "reserved_resources": {},
        "unreserved_resources": agent.total.to_state(),
        "attributes": dict(agent.attributes),
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    }


def state_json(master: Master, flags: dict[str, str]) -> dict[str, Any]:
    info = master.info
    return {
        "version": VERSION, "build_user": "wharf", "build_date": "", "build_time": 0,
        "id": master.id, "pid": info["pid"], "hostname": info["hostname"],
        "start_time": master.started, "elected_time": master.started,
        "leader": info["pid"], "leader_info": info,
        "activated_slaves": len(master.agents), "deactivated_slaves": 0, "unreachable_slaves": 0,
        "flags": flags,
        "slaves": [agent_json(master, a) for a in master.agents.values()],
        "frameworks": [framework_json(master, f) for f in master.frameworks.values()],
        "completed_frameworks": [framework_json(master, f) for f in master.completed_frameworks],
        "orphan_tasks": [], "unregistered_frameworks": [],
    }


def metrics_json(master: Master, now: float) -> dict[str, float]:
    total = master.total()
    used = sum(master.used.values(), Resources())
    out: dict[str, float] = {"master/elected": 1.0, "master/uptime_secs": round(now - master.started, 3)}
    for name in ("cpus", "mem", "disk", "gpus"):
        out[f"master/{name}_total"] = total.scalar(name)
        out[f"master/{name}_used"] = used.scalar(name)
        out[f"master/{name}_percent"] = used.scalar(name) / total.scalar(name) if total.scalar(name) else 0.0
    states = ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", *sorted(TERMINAL_STATES))
    counts = dict.fromkeys(states, 0)
    for framework in [*master.frameworks.values(), *master.completed_frameworks]:
        for task in [*framework.tasks.values(), *framework.completed]:
            counts[task.state] = counts.get(task.state, 0) + 1
    for state, count in counts.items():
        out[f"master/tasks_{state.removeprefix('TASK_').lower()}"] = float(count)
    connected = sum(1 for f in master.frameworks.values() if f.connected)
    out.update({
        "master/frameworks_active": float(connected), "master/frameworks_connected": float(connected),
        "master/frameworks_disconnected": float(len(master.frameworks) - connected),
        "master/frameworks_inactive": float(len(master.frameworks) - connected),
        "master/slaves_active": float(len(master.agents)), "master/slaves_connected": float(len(master.agents)),
        "master/slaves_disconnected": 0.0, "master/slaves_inactive": 0.0,
        "master/outstanding_offers": float(len(master.offers)),
    })
    return out
