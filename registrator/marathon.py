"""What the registrator learns of Marathon: the apps of running tasks (their service ports and health
checks), asked once per app version, and which tasks Marathon counts healthy or is killing (the
items its event stream puts on the worker's queue)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from registrator.model import DockerContainer
from wharf.errors import WharfError, describe
from wharf.log import fields
from wharf.marathon import MarathonClient
from wharf.retry import Retry

log = logging.getLogger("wharf.registrator.marathon")
RETRY_AFTER = 30.0  # seconds before asking again about an app version Marathon could not tell
ONE_ROUND = Retry(max_tries=1, retry_on=(requests.ConnectionError, requests.Timeout))  # each master once


@dataclass(frozen=True)
class MarathonHealth:
    """Which tasks Marathon reports healthy: every app's (`whole`, read on connecting to its events),
    or one change (`app_id`'s `task`, a task or instance id, now `alive` or not)."""

    healthy: Mapping[str, frozenset[str]] = field(default_factory=dict)
    whole: bool = False
    app_id: str = ""
    task: str = ""
    alive: bool = False


@dataclass(frozen=True)
class TaskKilling:
    """Marathon reports the task `TASK_KILLING`: drained as on Docker's `kill`, maybe sooner."""

    task_id: str


class AppVersions:
    """`lookup(container)` -> the Marathon app (that version) the container is a task of; None when it
    is none, or Marathon is not configured or cannot answer (the caller then falls back to the
    `HAPROXY_{i}_PORT` labels and registers without the app's health checks)."""

    def __init__(self, urls: Sequence[str] | None, timeout: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = tuple(urls or ())
        self.client = MarathonClient(self.urls, timeout, ONE_ROUND) if self.urls else None
        self._clock = clock
        self._known: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._failed: dict[tuple[str, str], float] = {}

    def __call__(self, container: DockerContainer) -> Mapping[str, Any] | None:
        app_id = container.env.get("MARATHON_APP_ID")
        if not app_id or self.client is None:
            return None
        key = (app_id, container.env.get("MARATHON_APP_VERSION", ""))
        if key in self._known:
            return self._known[key]
        if self._clock() < self._failed.get(key, float("-inf")):
            return None
        try:
            app = self.client.version(app_id, key[1]) if key[1] else self.client.app(app_id)
            if app is not None:
                self._known[key] = app
                return app
        except (WharfError, ValueError) as exc:  # unreachable, refused, or not an app
            log.debug("marathon lookup failed", extra=fields(app=app_id, error=describe(exc)))
        log.warning("marathon has no such app version; using HAPROXY_{i}_PORT labels, no health checks",
                    extra=fields(app=app_id, version=key[1]))
        self._failed[key] = self._clock() + RETRY_AFTER
        return None


def healthy_tasks(tasks: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """App id -> the ids of its tasks that Marathon reports healthy (`/v2/tasks`): every health
    check result alive. A task with no results yet, or of an app without health checks, is not."""
    out: dict[str, set[str]] = {}
    for task in tasks:
        results = task.get("healthCheckResults") or []
        app_id, task_id = task.get("appId"), task.get("id")
        if app_id and task_id and results and all(r.get("alive") for r in results if isinstance(r, Mapping)):
            out.setdefault(str(app_id), set()).add(str(task_id))
    return {app_id: frozenset(ids) for app_id, ids in out.items()}


def counted_healthy(task_id: str, healthy: frozenset[str]) -> bool:
    """Whether Marathon counts task `task_id` healthy, `healthy` holding task ids or the instance ids
    Marathon 1.4+ names in its health events: `app.instance-<uuid>` for task `app.instance-<uuid>._app.1`,
    and `app.marathon-<uuid>` for an older task `app.<uuid>`."""
    if not task_id or not healthy:
        return False
    return task_id in healthy or any(task_id.startswith(i + ".") or task_id == i.replace(".marathon-", ".", 1)
                                     for i in healthy)
