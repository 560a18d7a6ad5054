"""Marathon's apps as the autoscaler sees them, marathon-lb's backend names, and the scale call."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from autoscale.policy import Policy, from_labels, has_policy_labels
from autoscale.stats import split_credentials
from wharf.errors import BadInput, Failure, reaching
from wharf.retry import Retry

log = logging.getLogger(__name__)
HAPROXY_PORT_LABEL = re.compile(r"^HAPROXY_(\d+)_PORT$")
CALL_RETRY = Retry(delay=0.5, max_tries=3, retry_on=(requests.ConnectionError,))


def marathon_lb_name(app_id: str) -> str:
    """marathon-lb's name for an app: the id without its leading `/`, `/` as `_`."""
    return app_id.lstrip("/").replace("/", "_")


@dataclass(frozen=True)
class App:
    """What the autoscaler needs of one Marathon app."""

    id: str
    instances: int
    labels: Mapping[str, str] = field(default_factory=dict)
    service_ports: tuple[int, ...] = ()
    deploying: bool = False

    @classmethod
    def from_marathon(cls, app: Mapping[str, Any]) -> App:
        """From an app of `GET /v2/apps`: service ports from `HAPROXY_{i}_PORT`, else
        `portDefinitions[i].port` / `portMappings[i].servicePort`."""
        labels = {str(k): str(v) for k, v in (app.get("labels") or {}).items()}
        ports = [int(p.get("port") or 0) for p in app.get("portDefinitions") or []]
        mappings = (app.get("container") or {}).get("portMappings") or \
            ((app.get("container") or {}).get("docker") or {}).get("portMappings") or []
        if mappings:
            ports = [int(m.get("servicePort") or 0) for m in mappings]
        if not ports and app.get("ports"):
            ports = [int(p) for p in app["ports"]]
        for key, value in labels.items():
            match = HAPROXY_PORT_LABEL.match(key)
            if match and value.isdigit():
                index = int(match.group(1))
                ports += [0] * (index + 1 - len(ports))
                ports[index] = int(value)
        return cls(str(app["id"]), int(app.get("instances") or 0), labels,
                   tuple(p for p in ports if p > 0), bool(app.get("deployments")))

    def backends(self) -> list[str]:
        """The HAProxy backends marathon-lb names for this app, one per service port."""
        return [f"{marathon_lb_name(self.id)}_{port}" for port in self.service_ports]


@dataclass(frozen=True)
class Scaled:
    """One app to scale: the app, its policy, and the backends whose traffic counts."""

    app: App
    policy: Policy
    backends: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """The apps to scale, the `--apps` names that matched no app, and apps left out for bad input."""

    scaled: list[Scaled]
    missing: list[str]
    problems: list[str]


def select(apps: Iterable[App], named: Sequence[str], base: Policy | Mapping[str, Any] | None) -> Selection:
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
            owners = [a for a in apps if marathon_lb_name(a.id) == app_part]
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


class MarathonApi:
    """The three calls the autoscaler makes, against one or several Marathon masters."""

    def __init__(self, urls: Sequence[str], auth: tuple[str, str] | None = None, timeout: float = 10.0,
                 retry: Retry = CALL_RETRY) -> None:
        if not urls:
            raise BadInput("--marathon: no Marathon URL given (or set MARATHON_URL)")
        plain = []
        for url in urls:
            stripped, given = split_credentials(url)
            plain.append(stripped.rstrip("/"))
            auth = auth or given
        self.urls, self.auth, self.timeout, self.retry = plain, auth, timeout, retry

    def _once(self, method: str, path: str, body: Any = None) -> Any:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = requests.request(method, url + path, json=body, auth=self.auth, timeout=self.timeout)
            except requests.ConnectionError as exc:
                last = exc
                continue
            if response.status_code >= 400:
                try:
                    message = response.json().get("message", "")
                except ValueError:
                    message = response.text[:200]
                raise Failure(f"marathon {method} {path}: HTTP {response.status_code} {message}".rstrip())
            return response.json()
        assert last is not None
        raise last  # no master answered: the last one's error says why

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One API call, trying each master, retrying connection errors."""
        with reaching("Marathon", ", ".join(self.urls), self.retry.deadline):
            return self.retry(self._once, method, path, body)

    def apps(self) -> list[App]:
        """Every app, marked `deploying` when a deployment affects it (`GET /v2/deployments` too)."""
        apps = [App.from_marathon(a) for a in self.call("GET", "/v2/apps").get("apps", [])]
        busy = {app_id for d in self.call("GET", "/v2/deployments") for app_id in d.get("affectedApps", [])}
        return [App(a.id, a.instances, a.labels, a.service_ports, a.deploying or a.id in busy) for a in apps]

    def scale(self, app_id: str, instances: int) -> Any:
        """`PUT /v2/apps/{id}` with only `{"instances": N}`, without `force`."""
        return self.call("PUT", f"/v2/apps/{app_id.lstrip('/')}", {"instances": instances})
