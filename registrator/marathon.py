"""Service ports of Marathon apps, asked of Marathon once per app version."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from registrator.model import Container
from wharf.log import fields

log = logging.getLogger("wharf.registrator.marathon")
RETRY_AFTER = 30.0  # seconds before asking again about an app version Marathon could not tell


def service_ports(app: Mapping[str, Any]) -> dict[int, int]:
    """Port index -> service port of a Marathon app definition (`portDefinitions[i].port`, or the
    port mappings' `servicePort`, container-level as in Marathon 1.5+ or under `docker` before)."""
    found: dict[int, int] = {}
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get("portMappings") or []
    for source, key in ((app.get("portDefinitions") or [], "port"), (mappings, "servicePort")):
        for i, item in enumerate(source):
            if isinstance(item, Mapping) and int(item.get(key) or 0) > 0:
                found.setdefault(i, int(item[key]))
    return found


class ServicePorts:
    """`lookup(container)` -> {port index: service port}; empty when Marathon is not configured or
    cannot answer (the caller then falls back to the `HAPROXY_{i}_PORT` labels)."""

    def __init__(self, urls: Sequence[str] | None, timeout: float = 2.0,
                 get: Callable[..., Any] = requests.get, clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = tuple(urls or ())
        self.timeout = timeout
        self._get = get
        self._clock = clock
        self._known: dict[tuple[str, str], dict[int, int]] = {}
        self._failed: dict[tuple[str, str], float] = {}

    def __call__(self, container: Container) -> dict[int, int]:
        app_id = container.env.get("MARATHON_APP_ID")
        if not app_id or not self.urls:
            return {}
        key = (app_id, container.env.get("MARATHON_APP_VERSION", ""))
        if key in self._known:
            return self._known[key]
        if self._clock() < self._failed.get(key, float("-inf")):
            return {}
        path = f"/v2/apps/{quote(app_id.strip('/'))}"
        if key[1]:
            path += f"/versions/{quote(key[1])}"
        for url in self.urls:
            try:
                response = self._get(url + path, timeout=self.timeout)
                if response.status_code == 200:
                    data = response.json()
                    self._known[key] = service_ports(data.get("app", data))
                    return self._known[key]
            except (requests.RequestException, ValueError) as exc:
                log.debug("marathon lookup failed", extra=fields(app=app_id, error=str(exc)))
        log.warning("marathon has no service ports for the app; using HAPROXY_{i}_PORT labels",
                    extra=fields(app=app_id, version=key[1]))
        self._failed[key] = self._clock() + RETRY_AFTER
        return {}
