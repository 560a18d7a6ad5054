"""Real Consul (Debian 11's 1.8.7, fetched by `make bootstrap`) as `consul agent -dev` on loopback.

Dev mode keeps everything in memory: a restarted agent is empty, which is the fault the registrator
and the renderer are tested against. With `acl=True` ACLs are on with default deny; the management
token lives in a config file (mode 600), never on a command line, and `env()` exports it as
`CONSUL_HTTP_TOKEN`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devcluster.service import DevService
from wharf.atomic import write_atomic

NODE_NAME = "wharf-dev"


def consul_binary() -> str:
    """The consul that `make bootstrap` linked into the virtualenv, else one on PATH."""
    beside = Path(sys.prefix) / "bin" / "consul"
    if beside.exists():
        return str(beside)
    return shutil.which("consul") or str(beside)


class Consul(DevService):
    name = "consul"
    #: HTTP is the one a user sets (`--consul-port`); the gossip and RPC ports are picked free
    port_flags = ("--consul-port", "--consul-serf-lan-port", "--consul-serf-wan-port", "--consul-server-port")
    binaries = (consul_binary(),)

    def __init__(self, directory: Path, ports: dict[str, int], options: Mapping[str, Any] | None = None) -> None:
        super().__init__(directory, ports, options)
        self.acl = bool(self.choices.get("consul_acl"))

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.ports['--consul-port']}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def _token_file(self) -> Path:
        return self.dir / "acl.json"

    @property
    def token(self) -> str | None:
        """The management token in ACL mode (kept across restarts), else None."""
        if not self.acl:
            return None
        try:
            return str(json.loads(self._token_file.read_text())["acl"]["tokens"]["master"])
        except FileNotFoundError:
            return None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.acl and self.token is None:
            token = secrets.token_hex(16)
            acl = {"acl": {"enabled": True, "default_policy": "deny", "down_policy": "extend-cache",
                           "tokens": {"master": token, "agent": token}}}
            write_atomic(self._token_file, json.dumps(acl), 0o600)

    def argv(self) -> list[str]:
        p = self.ports
        argv = [
            self.binaries[0], "agent", "-dev", "-node", NODE_NAME,
            "-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
            "-http-port", str(p["--consul-port"]), "-dns-port", "-1", "-grpc-port", "-1",
            "-serf-lan-port", str(p["--consul-serf-lan-port"]),
            "-serf-wan-port", str(p["--consul-serf-wan-port"]),
            "-server-port", str(p["--consul-server-port"]),
            "-data-dir", str(self.data_dir), "-log-level", "info",
        ]
        if self.acl:
            argv += ["-config-file", str(self._token_file)]
        return argv

    def clean_up(self) -> None:
        """Drop the agent's data dir: the agent persists its own services there even in dev mode,
        and a restarted dev agent must be empty."""
        super().clean_up()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def probe(self) -> None:
        with urllib.request.urlopen(f"{self.url}/v1/status/leader", timeout=1.0) as response:
            if not json.load(response):
                raise RuntimeError("no leader yet")

    def endpoints(self) -> dict[str, Any]:
        return {"http": self.url, "acl": self.acl}

    def env(self) -> dict[str, str]:
        env = {"CONSUL_HTTP_ADDR": self.addr}
        if self.token:
            env["CONSUL_HTTP_TOKEN"] = self.token
        return env
