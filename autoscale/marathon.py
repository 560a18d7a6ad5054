"""Marathon's apps as the autoscaler sees them, marathon-lb's backend names, and the scale call."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests

from autoscale.policy import Policy, from_labels, has_policy_labels
from wharf.contracts.marathon_lb import app_name, route_name, service_ports
from wharf.errors import BadInput
from wharf.http import split_credentials
from wharf.marathon import MarathonClient
from wharf.retry import Retry

log = logging.getLogger(__name__)
CALL_RETRY = Retry(delay=0.5, max_tries=3, retry_on=(requests.ConnectionError,))


@dataclass(frozen=True)
class ScaledApp:
    """What the autoscaler needs of one Marathon app."""

    id: str
    instances: int
    labels: Mapping[str, str] = field(default_factory=dict)
    service_ports: tuple[int, ...] = ()
    deploying: bool = False
    healthy: int | None = None  # tasks serving: healthy ones, or running ones without health checks

    @classmethod
    def from_marathon(cls, app: Mapping[str, Any]) -> ScaledApp:
        """From an app of `GET /v2/apps`: service ports as marathon-lb reads them (`HAPROXY_{i}_PORT`,
        else `portDefinitions[i].port` / `portMappings[i].servicePort`), and the tasks serving
        (`tasksHealthy` if the app has health checks, else `tasksRunning`)."""
        labels = {str(k): str(v) for k, v in (app.get("labels") or {}).items()}
        counted = app.get("tasksHealthy") if app.get("healthChecks") else app.get("tasksRunning")
        return cls(str(app["id"]), int(app.get("instances") or 0), labels,
                   tuple(service_ports(app).values()), bool(app.get("deployments")),
                   None if counted is None else int(counted))

    def backends(self) -> list[str]:
        """The HAProxy backends marathon-lb names for this app, one per service port."""
        return [route_name(self.id, port) for port in self.service_ports]


@dataclass(frozen=True)
class Scaled:
    """One app to scale: the app, its policy, and the backends whose traffic counts."""

    app: ScaledApp
    policy: Policy
    backends: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """The apps to scale, the `--apps` names that matched no app, and apps left out for bad input."""

    scaled: list[Scaled]
    missing: list[str]
    problems: list[str]


def select(apps: Iterable[ScaledApp], named: Sequence[str], base: Policy | Mapping[str, Any] | None) -> Selection:
    """The apps to scale: those `--apps` names (marathon-lb backends `<app>_<servicePort>`) and
    those carrying `wharf.autoscale.target_rps`.

    `base` is the command line's policy, whole or only the fields it sets (see `from_labels`);
    labels override it for their app. An app whose labels are wrong, or named by `--apps` without
    labels or `--target-rps`, is left out with a one-line problem naming the app, the label and
    the reason; the others are still scaled.
    """
    apps = list(apps)
    chosen: dict[str, set[str]] = {}
    missing = []
    for name in named:
        owners = [a for a in apps if name in a.backends()]
        if not owners:  # no service port known: match the name part, as marathon-lb-autoscale does
            app_part = name.rsplit("_", 1)[0] if re.search(r"_\d+$", name) else name
            owners = [a for a in apps if app_name(a.id) == app_part]
        if not owners:
            missing.append(name)
        for app in owners:
            chosen.setdefault(app.id, set()).add(name)
    for app in apps:
        if has_policy_labels(app.labels):
            chosen.setdefault(app.id, set()).update(app.backends())
    result, problems = [], []
    for app in apps:
        if app.id in chosen:
            try:
                policy = from_labels(app.labels, base, where=f"app {app.id}")
            except BadInput as exc:
                problems.append(str(exc.message))
                continue
            result.append(Scaled(app, policy, tuple(sorted(chosen[app.id]))))
    return Selection(result, missing, problems)


class MarathonApps:
    """Marathon as the autoscaler sees it, on one or several masters: its apps and the scale call.

    `auth` (`--marathonCredentials`) is sent to every master; without it, the first credentials
    found in the URLs are."""

    def __init__(self, urls: Sequence[str], auth: tuple[str, str] | None = None, timeout: float = 10.0,
                 retry: Retry = CALL_RETRY) -> None:
        if not urls:
            raise BadInput("--marathon: no Marathon URL given (or set MARATHON_URL)")
        auth = auth or next((c for c in (split_credentials(u)[1] for u in urls) if c), None)
        self.client = MarathonClient(urls, timeout, retry, auth=auth)

    @property
    def auth(self) -> tuple[str, str] | None:
        return self.client.auth

    def apps(self) -> list[ScaledApp]:
        """Every app, marked `deploying` when a deployment affects it (`GET /v2/deployments` too)."""
        apps = [ScaledApp.from_marathon(a) for a in self.client.apps()]
        busy = {app_id for d in self.client.deployments() for app_id in d.get("affectedApps", [])}
        return [replace(a, deploying=a.deploying or a.id in busy) for a in apps]

    def scale(self, app_id: str, instances: int) -> str:
        """`PUT /v2/apps/{id}` with only `{"instances": N}`, without `force`; the deployment id."""
        return self.client.scale(app_id, instances)
