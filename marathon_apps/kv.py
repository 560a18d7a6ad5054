"""The Consul KV trigger of apps: `sync-kv` writes rendered apps under a prefix, `watch-kv` deploys them.

Layout under the prefix `P` (`wharf.kvprefix`): one key per app, `P/<app id without the leading
slash>` (`P/shop/web`), whose value is the app's Marathon JSON; and `P/.wharf/commit`, the commit the
apps came from, if given. (App ids never have a segment starting with a dot, so the two cannot clash.)

The transaction, the refusals and the watch loop are `wharf.kvprefix`'s; this module says what an
app's document is, how apps are read back (a bad value is refused naming its key, and nothing of that
index is deployed), and how the watcher deploys them: as `wharf apps deploy` does, telling the team
each outcome as it does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from marathon_apps.client import Marathon
from marathon_apps.deploy import Deployer, Outcome
from marathon_apps.notices import events_of
from marathon_apps.plan import make_plan
from marathon_apps.repo import graph_errors
from marathon_apps.spec import App
from wharf.configrepo import Spec, SpecError, SpecErrors
from wharf.contracts.marathon_app import InvalidAppId, parse_app_id, validate_app
from wharf.kvprefix import Entry, PrefixWatcher, layout, split
from wharf.log import fields

log = logging.getLogger("wharf.apps.kv")

DEPLOYS = Counter("wharf_apps_kv_deploys_total", "Deploys started by a KV change, by outcome", ["outcome"])
INDEX = Gauge("wharf_apps_kv_index", "The KV index (ModifyIndex of the prefix) last deployed")


def documents(apps: Iterable[App], prefix: str, commit: str | None = None) -> dict[str, bytes]:
    """What the keys under `prefix` should hold: each app's JSON (stable bytes), and the commit."""
    return layout(prefix, {a.id.strip("/"): a.definition for a in apps}, commit)


def apps_of(entries: Mapping[str, Entry], prefix: str, owner: str) -> tuple[list[App], str | None]:
    """The apps held under `prefix` and the commit; raises SpecErrors (naming the key) for a value
    that is not a valid Marathon app whose id is its key."""
    apps: list[App] = []
    errors: list[SpecError] = []
    held, commit = split(entries, prefix)
    for key, rel, value in held:
        try:
            app_id = parse_app_id("/" + rel)
            definition = json.loads(value)
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


class KvWatcher(PrefixWatcher):
    """`wharf apps watch-kv`: deploy what the prefix holds whenever its index moves."""

    def __init__(self, consul: Any, marathon: Marathon, prefix: str, owner: str, *, prune: bool = False,
                 timeout: float = 300.0, wait: float = 30.0, metrics_port: int | None = None) -> None:
        super().__init__("apps-watch-kv", consul, prefix, wait=wait, metrics_port=metrics_port, logger=log)
        self.marathon, self.owner, self.prune, self.timeout = marathon, owner, prune, timeout
        self.last: Outcome | None = None

    def act(self, index: int, entries: dict[str, Entry]) -> None:
        """Deploy the apps the prefix holds at `index`: read them back (a bad one refuses the index),
        plan against Marathon, deploy, tell the team."""
        try:
            apps, commit = apps_of(entries, self.prefix, self.owner)
        except SpecErrors as exc:
            DEPLOYS.labels("refused").inc()
            self.refused(index, exc, "deploy", "bad app in KV")
            return
        prune = self.prune and bool(apps)  # an empty prefix (a wiped Consul?) never deletes every app
        plan = make_plan(apps, self.marathon.apps(), self.owner, prune)
        if not plan.todo():
            log.info("nothing to do", extra=fields(index=index, apps=len(apps)))
            INDEX.set(index)
            return
        log.info("deploying", extra=fields(index=index, changes=len(plan.todo()), commit=commit or ""))
        recorded = commit or f"kv@{index}"
        outcome = Deployer(self.marathon, LogReporter(), timeout=self.timeout, commit=recorded).run(plan)
        self.last = outcome
        INDEX.set(index)
        DEPLOYS.labels("ok" if outcome.ok else "failed").inc()
        self.notices.send(events_of(plan.todo(), outcome, recorded))
        level = logging.INFO if outcome.ok else logging.ERROR
        log.log(level, "deployed" if outcome.ok else "deploy failed", extra=fields(index=index, **{
            k: ",".join(v) if isinstance(v, list) else json.dumps(v) for k, v in outcome.to_json().items()
            if k != "ok"}))


class LogReporter:
    """Deploy progress as structured log lines (what a daemon has instead of a terminal)."""

    def update(self, app_id: str, state: str, detail: str = "") -> None:
        log.info(state, extra=fields(app=app_id, detail=detail))
