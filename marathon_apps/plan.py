"""What a deploy would change: the repository's apps against Marathon's, in deploy order. Pure.

Each app is `create`, `update` (with the fields that differ), `scale` (only `instances` differs),
`delete` (an app wharf owns that the repository no longer has; only with prune) or `unchanged`; an
app with `strategy: bluegreen` changes by `bluegreen` (a new colour app beside the old one, see
`marathon_apps.bluegreen`), or `scale` of its active colour.
Fields Marathon fills in are ignored: read-only ones (`version`, task counts, ...), defaults the
live app shows and the spec leaves out, service ports Marathon assigned where the spec says 0,
and the `wharf.commit` label. An app with `autoscale` keeps the instance count the autoscaler set
while it lies within min..max.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marathon_apps import graph
from marathon_apps.spec import AUTOSCALE_PREFIX, COMMIT_LABEL, App, label_owner

READ_ONLY = frozenset({"version", "versionInfo", "tasks", "tasksRunning", "tasksStaged", "tasksHealthy",
                       "tasksUnhealthy", "deployments", "lastTaskFailure", "taskStats", "readinessCheckResults",
                       "counts", "readinessChecks_results"})
# Top-level fields a live app may show that a spec leaving them out does not mean to remove.
FILLED = frozenset({"role", "ports", "uris", "ipAddress", "storeUrls", "taskKillGracePeriodSeconds", "tty",
                    "residency", "resourceLimits", "check", "executorResources"})
MAPS = frozenset({"env", "labels", "secrets"})  # compared whole: a key left out is a key removed
KINDS = ("create", "update", "scale", "bluegreen", "delete", "unchanged")


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: its path (`container.docker.image`), the live and the wanted value."""

    path: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return {"field": self.path, "old": None if self.old is MISSING else self.old,
                "new": None if self.new is MISSING else self.new}


@dataclass(frozen=True)
class AppChange:
    """What happens to one app."""

    kind: str
    app_id: str
    fields: tuple[FieldChange, ...] = ()
    desired: dict[str, Any] | None = field(default=None, repr=False)
    live: dict[str, Any] | None = field(default=None, repr=False)
    after: tuple[str, ...] = ()  # the apps it waits for (those of this plan that change)
    strategy: str = "rolling"  # or "bluegreen"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"app": self.app_id, "action": self.kind, "after": list(self.after),
                               "strategy": self.strategy}
        if self.kind in ("update", "scale", "bluegreen"):
            out["fields"] = [f.to_json() for f in self.fields]
        if self.kind == "bluegreen" and self.desired is not None:
            out["to"] = self.desired["id"]
            if self.live is not None:
                out["from"] = self.live["id"]
        if self.live is not None:
            out["version"] = self.live.get("version")
        return out


@dataclass(frozen=True)
class DeployPlan:
    """Every app's change, creates/updates in dependency order, then deletes (dependents first)."""

    changes: tuple[AppChange, ...]

    def todo(self) -> list[AppChange]:
        return [c for c in self.changes if c.kind != "unchanged"]

    def counts(self) -> dict[str, int]:
        return {k: sum(1 for c in self.changes if c.kind == k) for k in KINDS}

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "summary": self.counts()}


def clean_live(app: Mapping[str, Any]) -> dict[str, Any]:
    """A live app without what Marathon alone writes (read-only fields, the commit label)."""
    out = {k: v for k, v in app.items() if k not in READ_ONLY}
    labels = dict(out.get("labels") or {})
    labels.pop(COMMIT_LABEL, None)
    out["labels"] = labels
    return out


def _with_assigned_ports(desired: dict[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    """Take the service ports Marathon assigned where the spec asks for any (0)."""
    out = dict(desired)
    pairs = [("portDefinitions", "port", out.get("portDefinitions"), live.get("portDefinitions"))]
    container = out.get("container")
    if isinstance(container, dict) and container.get("portMappings") is not None:
        out["container"] = container = dict(container)
        pairs.append(("portMappings", "servicePort", container.get("portMappings"),
                      (live.get("container") or {}).get("portMappings")))
    for where, key, wanted, have in pairs:
        if not wanted or not have or len(wanted) != len(have):
            continue
        fixed = [dict(w, **{key: h.get(key, 0)}) if not w.get(key) else w for w, h in zip(wanted, have, strict=True)]
        if where == "portDefinitions":
            out["portDefinitions"] = fixed
        else:
            out["container"]["portMappings"] = fixed
    return out


def _diff(path: str, old: Any, new: Any, top: bool, out: list[FieldChange]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in new:
            _diff(f"{path}.{key}" if path else key, old.get(key, MISSING), new[key], False, out)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) \
            and all(isinstance(o, dict) and isinstance(n, dict) for o, n in zip(old, new, strict=True)):
        for i, (o, n) in enumerate(zip(old, new, strict=True)):
            _diff(f"{path}[{i}]", o, n, False, out)
        return
    if old != new:
        out.append(FieldChange(path, old, new))


def diff_app(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[FieldChange]:
    """The fields of `desired` (a normalized definition) that differ from the `live` app."""
    live = clean_live(live)
    wanted = _with_assigned_ports(dict(desired), live)
    out: list[FieldChange] = []
    for key in sorted(set(wanted) | set(live)):
        old, new = live.get(key, MISSING), wanted.get(key, MISSING)
        if new is MISSING:
            if key not in FILLED and old not in (None, [], {}, ""):
                out.append(FieldChange(key, old, MISSING))
        elif key in MAPS:
            old_map = old if isinstance(old, dict) else {}
            for name in sorted(set(old_map) | set(new)):
                if old_map.get(name, MISSING) != new.get(name, MISSING):
                    out.append(FieldChange(f"{key}.{name}", old_map.get(name, MISSING), new.get(name, MISSING)))
        else:
            _diff(key, old, new, True, out)
    return _autoscaled(wanted, out)


def _autoscaled(wanted: Mapping[str, Any], changes: list[FieldChange]) -> list[FieldChange]:
    labels = wanted.get("labels") or {}
    low, high = labels.get(AUTOSCALE_PREFIX + "min"), labels.get(AUTOSCALE_PREFIX + "max")
    if low is None or high is None:
        return changes
    out = []
    for change in changes:
        if change.path == "instances" and isinstance(change.old, int) and int(low) <= change.old <= int(high):
            continue
        out.append(change)
    return out


def make_plan(apps: Iterable[App], live: Iterable[Mapping[str, Any]], owner: str, prune: bool = False) -> DeployPlan:
    """Compare the repository's `apps` (in any order) with Marathon's `live` apps."""
    from marathon_apps.bluegreen import group_apps, is_bluegreen, plan_change

    wanted = {a.id: a for a in apps}
    running = {str(a["id"]): dict(a) for a in live}
    deps = {a.id: list(a.dependencies) for a in wanted.values()}
    changes: dict[str, AppChange] = {}
    for app_id in graph.order(deps):
        app = wanted[app_id]
        if is_bluegreen(app.definition):
            changes[app_id] = plan_change(app.definition, running.values())
            continue
        desired = app.normalized()
        current = running.get(app_id)
        if current is None:
            changes[app_id] = AppChange("create", app_id, desired=app.definition)
            continue
        fields = tuple(diff_app(desired, current))
        kind = "unchanged" if not fields else "scale" if all(f.path == "instances" for f in fields) else "update"
        changes[app_id] = AppChange(kind, app_id, fields, app.definition, current)
    for app_id, change in changes.items():
        after = tuple(d for d in deps[app_id] if d in changes and changes[d].kind != "unchanged")
        if after:
            changes[app_id] = AppChange(change.kind, change.app_id, change.fields, change.desired, change.live, after,
                                        change.strategy)
    ordered = list(changes.values())
    if prune:
        kept = {str(a["id"]) for i, w in wanted.items() if is_bluegreen(w.definition)
                for a in group_apps(running.values(), i)}
        gone = {i: a for i, a in running.items() if i not in wanted and i not in kept and label_owner(a) == owner}
        gone_deps = {i: [d for d in a.get("dependencies") or [] if d in gone] for i, a in gone.items()}
        for app_id in reversed(graph.order(gone_deps)):  # dependents go first
            dependents = tuple(i for i, d in gone_deps.items() if app_id in d)
            ordered.append(AppChange("delete", app_id, live=gone[app_id], after=dependents))
    return DeployPlan(tuple(ordered))
