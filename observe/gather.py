"""Read the pipeline once, for `observe.links.trace`: Marathon, Consul, HAProxy, the config file.

The same systems the rooms use, through the same settings and credentials: Marathon's apps with
their tasks, counts and last failure (one `GET /v2/apps`) and its deployments; Consul's catalog
(`/v1/catalog/nodes`, each node's services, `/v1/health/state/any`) and the autoscaler's decisions
(KV under `wharf.contracts.autoscale.PREFIX`); each HAProxy's statistics; the renderer's record of
the config file HAProxy runs (`wharf.haproxy.applied`). Marathon unreachable ends the trace (one
line naming where it was tried); Consul or an HAProxy unreachable is a broken link of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from observe.links import CatalogEntry, Check, ConfigFile, View
from wharf.consul_http import address_of
from wharf.contracts import autoscale
from wharf.contracts.marathon_app import COMMIT_LABEL
from wharf.errors import describe, reaching
from wharf.haproxy import StatRow, StatsSource, applied, parse_stat_csv
from wharf.marathon import MarathonClient

#: what Marathon changes on its own between two versions of one definition
VOLATILE = frozenset({"version", "versionInfo", "instances"})
EMBED = ["apps.tasks", "apps.counts", "apps.lastTaskFailure", "apps.deployments"]


def registrations(nodes: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> list[CatalogEntry]:
    """Every service registration of `/v1/catalog/node/<node>` answers, with its checks from
    `/v1/health/state/any` (a node's own checks count for each of its services)."""
    by_service: dict[tuple[str, str], list[Check]] = {}
    for c in checks:
        by_service.setdefault((str(c.get("Node")), str(c.get("ServiceID") or "")), []).append(
            Check(str(c.get("CheckID")), str(c.get("Name") or ""), str(c.get("Status")), str(c.get("Output") or ""),
                  str(c.get("Notes") or "")))
    out = []
    for answer in nodes:
        node = answer.get("Node") or {}
        name = str(node.get("Node"))
        own = tuple(by_service.get((name, ""), []))
        for service in (answer.get("Services") or {}).values():
            out.append(CatalogEntry(str(service.get("ID")), str(service.get("Service")), name,
                                    str(service.get("Address") or node.get("Address")), int(service.get("Port") or 0),
                                    dict(service.get("Meta") or {}),
                                    own + tuple(by_service.get((name, str(service.get("ID"))), []))))
    return out


def decisions(entries: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """App id -> the autoscaler's last decision, from the KV entries under its prefix (a bad one is skipped)."""
    out = {}
    for entry in entries or []:
        try:
            data = json.loads(entry.get("Value") or b"")
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("app"):
            out[str(data["app"])] = data
    return out


def read_consul(consul: Any) -> tuple[list[CatalogEntry], dict[str, dict[str, Any]]]:
    """Every registration with its checks, and the autoscaler's decisions."""
    with reaching("Consul", address_of(consul)):
        _, nodes = consul.catalog.nodes()
        answers = [consul.catalog.node(str(n["Node"]))[1] or {} for n in nodes]
        _, checks = consul.health.state("any")
        _, entries = consul.kv.get(autoscale.PREFIX, recurse=True)
    return registrations(answers, checks), decisions(entries)


def read_haproxies(sources: Sequence[StatsSource]) -> tuple[dict[str, list[StatRow]], str | None]:
    """Each HAProxy's statistics, and why one could not be read (the first such)."""
    rows, why = {}, None
    for source in sources:
        try:
            rows[source.name] = parse_stat_csv(source.read())
        except Exception as exc:  # noqa: BLE001 - one HAProxy down is a finding, not the end of the trace
            why = why or f"{source.name}: {describe(exc)}"
    return rows, why


def config_file(path: Path | None) -> ConfigFile | None:
    """The config file and the renderer's record of it; None when no file is given."""
    if path is None:
        return None
    record = applied(path)
    try:
        info = path.stat()
    except OSError:
        return ConfigFile(str(path), None, record, None)
    return ConfigFile(str(path), info.st_mtime, record, None if record is None else record.matches(info))


def read_view(marathon: MarathonClient, consul: Any, haproxies: Sequence[StatsSource] = (),
              config: Path | None = None, clock: Callable[[], float] = time.time) -> View:
    """Everything `trace` needs, read once."""
    with reaching("Marathon", marathon.shown):
        apps = marathon.apps(EMBED)
        deployments = marathon.deployments()
    unreachable: dict[str, str] = {}
    regs: list[CatalogEntry] = []
    decided: dict[str, dict[str, Any]] = {}
    try:
        regs, decided = read_consul(consul)
    except Exception as exc:  # noqa: BLE001 - named in the consul link
        unreachable["consul"] = describe(exc)
    rows, why = read_haproxies(haproxies)
    if why and not rows:
        unreachable["haproxy"] = why
    return View(clock(), {str(a["id"]): a for a in apps}, deployments, regs, rows, config_file(config), decided,
                unreachable)


def deploy_kinds(definitions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """An app's versions, newest first, each named by what changed from the one before it: `deploy`
    (a new commit), `rollback` (a commit an older version had), `scale` (instances only) or `change`."""
    out = []
    for i, app in enumerate(definitions):
        labels = app.get("labels") or {}
        commit = labels.get(COMMIT_LABEL)
        older = definitions[i + 1:]
        before = older[0] if older else None
        kind = "deploy"
        if before is not None:
            before_commit = (before.get("labels") or {}).get(COMMIT_LABEL)
            if commit != before_commit:
                kind = "rollback" if any((o.get("labels") or {}).get(COMMIT_LABEL) == commit for o in older[1:]) \
                    else "deploy"
            elif {k: v for k, v in app.items() if k not in VOLATILE} == \
                    {k: v for k, v in before.items() if k not in VOLATILE}:
                kind = "scale" if app.get("instances") != before.get("instances") else "restart"
            else:
                kind = "change"
        image = ((app.get("container") or {}).get("docker") or {}).get("image")
        out.append({"version": app.get("version"), "kind": kind, "commit": commit, "instances": app.get("instances"),
                    "image": image})
    return out


def deploys(marathon: MarathonClient, ids: Sequence[str], limit: int = 20) -> list[dict[str, Any]]:
    """The last `limit` versions of the apps `ids` (one app, or a blue/green group's colours), newest first."""
    out = []
    with reaching("Marathon", marathon.shown):
        for one in ids:
            versions = marathon.versions(one)[:limit]
            out += [{"app": one, **entry} for entry in deploy_kinds([marathon.version(one, v) for v in versions])]
    return sorted(out, key=lambda e: str(e["version"]), reverse=True)[:limit]
