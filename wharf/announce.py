"""A daemon's metrics endpoint in the local Consul agent, where Prometheus finds it (`consul_sd_configs`).

`Daemon.run(settings)` starts one `Announcer` when the daemon serves metrics. It registers service
`wharf-<daemon>` (tag `wharf-metrics`, Meta `wharf_daemon=<daemon>`, an HTTP check on `/metrics`) and
looks every `every` seconds whether the agent still holds it (a restarted agent may have lost it),
registering it again if not. A failure is one warning until it succeeds again, and never stops the
daemon. `stop()`, on a clean stop, deregisters it; a killed daemon leaves it behind, so Prometheus
scrapes it and finds it down.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from wharf.consul_http import address_of, client_from
from wharf.contracts.consul_meta import DAEMON, METRICS_TAG
from wharf.errors import describe
from wharf.log import fields
from wharf.settings import Settings

#: how often the agent checks the endpoint, and how long one answer may take
CHECK_INTERVAL, CHECK_TIMEOUT = "5s", "2s"


def registration(daemon: str, host: str, port: int, hostname: str) -> dict[str, Any]:
    """The registration of `daemon`'s metrics endpoint, as py-consul's `agent.service.register` takes it:
    its ID is unique per host and port."""
    return {"name": f"wharf-{daemon}", "service_id": f"{hostname}:wharf-{daemon}:{port}", "address": host,
            "port": port, "tags": [METRICS_TAG], "meta": {DAEMON: daemon},
            "check": {"http": f"http://{host}:{port}/metrics", "interval": CHECK_INTERVAL, "timeout": CHECK_TIMEOUT}}


class Announcer:
    """Keeps one registration on the agent from a thread of its own, until `stop()`."""

    def __init__(self, consul: Any, body: dict[str, Any], log: logging.Logger, every: float = 10.0) -> None:
        self.consul, self.body, self.log, self.every = consul, body, log, every
        self.registered = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics in consul", daemon=True)

    @property
    def service_id(self) -> str:
        return str(self.body["service_id"])

    def start(self) -> Announcer:
        self._thread.start()
        return self

    def ensure(self) -> None:
        """Register the endpoint unless the agent holds it already."""
        if self.service_id not in self.consul.agent.services():
            self.consul.agent.service.register(**self.body)
            self.log.info("metrics registered in consul", extra=fields(
                service=self.body["name"], id=self.service_id, consul=address_of(self.consul)))
        self.registered = True

    def _run(self) -> None:
        failing = False
        while True:
            try:
                self.ensure()
                failing = False
            except Exception as exc:  # noqa: BLE001 - never the daemon's end: retried after `every`
                if not failing:
                    self.log.warning("metrics not registered in consul", extra=fields(
                        consul=address_of(self.consul), error=describe(exc), retry_in=self.every))
                failing = True
            if self._stopped.wait(self.every):
                return

    def stop(self) -> None:
        """End the checks and deregister the endpoint (a clean stop)."""
        self._stopped.set()
        self._thread.join(timeout=5)
        if not self.registered:
            return
        try:
            self.consul.agent.service.deregister(self.service_id)
        except Exception as exc:  # noqa: BLE001 - the daemon stops all the same
            self.log.warning("metrics not deregistered from consul", extra=fields(
                id=self.service_id, consul=address_of(self.consul), error=describe(exc)))


def announce(daemon: str, host: str, port: int, settings: Settings, log: logging.Logger) -> Announcer:
    """Start keeping `daemon`'s endpoint registered on the agent `settings` name (`CONSUL_HTTP_ADDR`,
    its token and CA file)."""
    consul = client_from(settings, timeout=2.0)
    return Announcer(consul, registration(daemon, host, port, socket.gethostname()), log).start()
