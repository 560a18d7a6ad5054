"""A real Docker registry (Debian's `docker-registry`, Docker Distribution 2.8) on loopback.

Images live under the service's own directory; no authentication (a loopback registry, as the
Docker engine trusts without TLS). Its access log (the service's log) shows every push and pull.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from devcluster.service import DevService


class Registry(DevService):
    name = "registry"
    port_flags = ("--registry-port",)
    binaries = ("docker-registry",)

    @property
    def address(self) -> str:
        """`host:port`, as an image reference starts (`127.0.0.1:5000/web:abc1234`)."""
        return f"127.0.0.1:{self.ports['--registry-port']}"

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}, "fields": {"service": "registry"}},
            "storage": {"filesystem": {"rootdirectory": str(self.dir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        (self.dir / "config.yml").write_text(json.dumps(config, indent=2))  # JSON is YAML

    def argv(self) -> list[str]:
        return ["docker-registry", "serve", str(self.dir / "config.yml")]

    def probe(self) -> None:
        with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1.0) as answer:
            if answer.status != 200:
                raise RuntimeError(f"GET /v2/ answered {answer.status}")

    def endpoints(self) -> dict[str, Any]:
        return {"address": self.address, "api": f"http://{self.address}/v2/", "data": str(self.dir / "data")}

    def env(self) -> dict[str, str]:
        return {"WHARF_REGISTRY": self.address}
