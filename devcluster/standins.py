"""The stand-ins for systems that cannot be installed here, run as dev-cluster services."""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

from devcluster.service import Service


class ConsulStandIn(Service):
    """`python -m devcluster.consul`: Consul's agent, catalog, health, KV and session APIs."""

    name = "consul"
    port_flags = ("--consul-port",)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['--consul-port']}"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "devcluster.consul", "--port", str(self.ports["--consul-port"]),
                "--node", "wharf-dev"]

    def probe(self) -> None:
        with urllib.request.urlopen(f"http://{self.address}/v1/status/leader", timeout=1.0) as response:
            if not json.load(response):
                raise RuntimeError("no leader")

    def endpoints(self) -> dict[str, Any]:
        return {"http": f"http://{self.address}"}

    def env(self) -> dict[str, str]:
        return {"CONSUL_HTTP_ADDR": self.address}
