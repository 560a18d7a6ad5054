"""The Consul KV trigger: `sync-kv` writes rendered apps under a prefix, `watch-kv` deploys them.

Layout under the prefix `P`: one key per app, `P/<app id without the leading slash>` (`P/shop/web`),
whose value is the app's Marathon JSON; and `P/.wharf/commit`, the commit the apps came from, if
given. (App ids never have a segment starting with a dot, so the two cannot clash.)

`sync-kv` writes only the keys whose value changed, and removes keys of apps the repository no
longer has, all in one Consul transaction guarded by each key's ModifyIndex (`cas`), so a
concurrent writer makes it fail rather than be overwritten. If Consul cannot be read nothing is
written: an unreadable prefix is never taken as an empty one. Consul allows at most 64
operations in a transaction; a larger change is refused with the count (split the push).

`watch-kv` is a daemon: a blocking query on the prefix (a `wharf.watch.ConsulWatch`, one query a
cycle) wakes it; it deploys the state at the index it read, and remembers that index once handled.
A wake-up at an index already handled deploys nothing; several writes between two wake-ups deploy
only the last state.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from marathon_apps.client import Marathon
from marathon_apps.deploy import Deployer, Outcome
from marathon_apps.plan import make_plan
from marathon_apps.repo import graph_errors
from marathon_apps.spec import App
from wharf.configrepo import Spec, SpecError, SpecErrors
from wharf.consul_http import address_of
from wharf.contracts.marathon_app import InvalidAppId, parse_app_id, validate_app
from wharf.daemon import Daemon
from wharf.errors import BadInput, Failure, reaching
from wharf.log import fields
from wharf.watch import ConsulWatch

log = logging.getLogger("wharf.apps.kv")
COMMIT_KEY = ".wharf/commit"
MAX_TXN_OPS = 64  # Consul's limit on operations in one transaction

DEPLOYS = Counter("wharf_apps_kv_deploys_total", "Deploys started by a KV change, by outcome", ["outcome"])
INDEX = Gauge("wharf_apps_kv_index", "The KV index (ModifyIndex of the prefix) last deployed")


@dataclass(frozen=True)
class Entry:
    """One key under the prefix as Consul holds it."""

    key: str
    value: bytes
    modify_index: int


def prefix_of(text: str) -> str:
    """`--prefix`: a KV path without leading or trailing slashes."""
    prefix = text.strip().strip("/")
    if not prefix:
        raise BadInput("--prefix: must not be empty (wharf writes and deletes every key under it)")
    return prefix


def documents(apps: Iterable[App], prefix: str, commit: str | None = None) -> dict[str, bytes]:
    """What the keys under `prefix` should hold: each app's JSON (stable bytes), and the commit."""
    out = {f"{prefix}/{a.id.strip('/')}": json.dumps(a.definition, sort_keys=True, indent=1).encode() + b"\n"
           for a in apps}
    if commit:
        out[f"{prefix}/{COMMIT_KEY}"] = commit.encode()
    return out


def txn_ops(wanted: Mapping[str, bytes], current: Mapping[str, Entry], keep_commit: bool = False) -> list[dict]:
    """The Consul transaction that turns `current` into `wanted`: a `cas` set for each new or
    changed key (index 0: must not exist yet), a `delete-cas` for each key no longer wanted."""
    ops = []
    for key in sorted(wanted):
        have = current.get(key)
        if have is None or have.value != wanted[key]:
            ops.append({"KV": {"Verb": "cas", "Key": key, "Value": base64.b64encode(wanted[key]).decode(),
                               "Index": have.modify_index if have else 0}})
    for key in sorted(set(current) - set(wanted)):
        if keep_commit and key.endswith("/" + COMMIT_KEY):
            continue
        ops.append({"KV": {"Verb": "delete-cas", "Key": key, "Index": current[key].modify_index}})
    return ops


def entries_of(raw: Iterable[Mapping[str, Any]] | None) -> dict[str, Entry]:
    """Consul's recurse answer as Entries (folders, which have no value, are left out)."""
    out = {}
    for item in raw or []:
        if item.get("Key", "").endswith("/"):
            continue
        out[item["Key"]] = Entry(item["Key"], item.get("Value") or b"", int(item.get("ModifyIndex", 0)))
    return out


def apps_of(entries: Mapping[str, Entry], prefix: str, owner: str) -> tuple[list[App], str | None]:
    """The apps held under `prefix` and the commit; raises SpecErrors (naming the key) for a value
    that is not a valid Marathon app whose id is its key."""
    apps: list[App] = []
    errors: list[SpecError] = []
    commit = None
    for key, entry in sorted(entries.items()):
        rel = key[len(prefix) + 1:]
        if rel == COMMIT_KEY:
            commit = entry.value.decode("utf-8", "replace").strip() or None
            continue
        try:
            app_id = parse_app_id("/" + rel)
            definition = json.loads(entry.value)
        except InvalidAppId as exc:
            errors.append(SpecError(key, f"the key is not a valid Marathon app id: {exc}"))
            continue
        except ValueError as exc:
            errors.append(SpecError(key, f"not JSON: {exc}"))
            continue
        if not isinstance(definition, dict) or definition.get("id") != app_id:
            errors.append(SpecError(key, f"must hold the Marathon JSON of the app {app_id}", field="id"))
            continue
        problems = validate_app(definition)
        errors += [SpecError(key, v.message, field=v.path) for v in problems]
        if not problems:
            labels = definition.setdefault("labels", {})
            labels.setdefault("wharf.owner", owner)
            apps.append(App(app_id, definition, Spec(key, rel, definition)))
    if not errors:
        errors = graph_errors(apps)
    if errors:
        raise SpecErrors(errors)
    return apps, commit


# --- Consul I/O --------------------------------------------------------------------------------

def read_prefix(client: Any, prefix: str, index: int | None = None, wait: str | None = None) -> tuple[int, dict]:
    """(X-Consul-Index, entries) of everything under `prefix`; raises Failure if Consul cannot say."""
    kwargs: dict[str, Any] = {"recurse": True}
    if index is not None:
        kwargs.update(index=index, wait=wait)
    with reaching("Consul", address_of(client)):  # py-consul raises its own and requests' exceptions
        found, raw = client.kv.get(prefix + "/", **kwargs)
    return int(found or 0), entries_of(raw)


def sync(client: Any, apps: Iterable[App], prefix: str, commit: str | None = None) -> list[str]:
    """Write the apps under `prefix` in one transaction; the keys changed (set or deleted)."""
    _, current = read_prefix(client, prefix)
    ops = txn_ops(documents(apps, prefix, commit), current, keep_commit=commit is None)
    if not ops:
        return []
    if len(ops) > MAX_TXN_OPS:
        raise BadInput(f"--prefix {prefix}: {len(ops)} keys change, more than the {MAX_TXN_OPS} operations Consul "
                       "allows in one transaction; sync fewer apps at a time")
    with reaching("Consul", address_of(client)):  # one transaction: all of it is written or nothing
        result = client.txn.put(ops)
    if isinstance(result, dict) and result.get("Errors"):
        raise Failure(f"Consul: transaction refused, nothing written: {result['Errors']}")
    return [op["KV"]["Key"] for op in ops]


class KvWatcher(Daemon):
    """`wharf apps watch-kv`: deploy what the prefix holds whenever its index moves."""

    interval = 0.0  # the blocking query does the waiting

    def __init__(self, consul: Any, marathon: Marathon, prefix: str, owner: str, *, prune: bool = False,
                 timeout: float = 300.0, wait: float = 30.0, metrics_port: int | None = None) -> None:
        super().__init__("apps-watch-kv", metrics_port)
        self.consul, self.marathon, self.prefix, self.owner = consul, marathon, prefix, owner
        self.prune, self.timeout, self.wait_seconds = prune, timeout, wait
        self.seen: int | None = None  # the index the last read returned
        self.handled: int | None = None  # the index whose state was deployed (or refused)
        self.last: Outcome | None = None
        self.watch = ConsulWatch(f"kv:{prefix}", self._read, address=address_of(consul), logger=log)

    def _read(self, index: int) -> tuple[int, tuple[int, dict[str, Entry]]]:
        found, entries = read_prefix(self.consul, self.prefix, index or None, f"{self.wait_seconds:g}s")
        return found, (found, entries)

    def run_cycle(self) -> None:
        self.wait(self.watch.due_in())  # the watch's rate limit, cut short by SIGTERM
        if self.stopping:
            return
        _, (index, entries) = self.watch.step()  # a failure is raised: the skeleton backs off
        if self.seen is not None and index < self.seen:
            log.warning("KV index went back (a Consul restart?); reading afresh",
                        extra=fields(index=index, was=self.seen))
            self.handled = None
        self.seen = index
        if index == self.handled or self.stopping:
            return
        self.deploy(index, entries)

    def deploy(self, index: int, entries: dict[str, Entry]) -> None:
        try:
            apps, commit = apps_of(entries, self.prefix, self.owner)
        except SpecErrors as exc:
            DEPLOYS.labels("refused").inc()
            for error in exc.errors:
                log.error("bad app in KV", extra=fields(index=index, error=str(error)))
            self.handled = index
            return
        prune = self.prune and bool(apps)  # an empty prefix (a wiped Consul?) never deletes every app
        plan = make_plan(apps, self.marathon.apps(), self.owner, prune)
        if not plan.todo():
            log.info("nothing to do", extra=fields(index=index, apps=len(apps)))
            self.handled = index
            INDEX.set(index)
            return
        log.info("deploying", extra=fields(index=index, changes=len(plan.todo()), commit=commit or ""))
        outcome = Deployer(self.marathon, LogReporter(), timeout=self.timeout,
                           commit=commit or f"kv@{index}").run(plan)
        self.last, self.handled = outcome, index
        INDEX.set(index)
        DEPLOYS.labels("ok" if outcome.ok else "failed").inc()
        level = logging.INFO if outcome.ok else logging.ERROR
        log.log(level, "deployed" if outcome.ok else "deploy failed", extra=fields(index=index, **{
            k: ",".join(v) if isinstance(v, list) else json.dumps(v) for k, v in outcome.to_json().items()
            if k != "ok"}))


class LogReporter:
    """Deploy progress as structured log lines (what a daemon has instead of a terminal)."""

    def update(self, app_id: str, state: str, detail: str = "") -> None:
        log.info(state, extra=fields(app=app_id, detail=detail))
