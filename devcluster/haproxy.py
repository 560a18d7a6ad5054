"""Real HAProxy (Debian's package) in master-worker mode, with admin and master sockets."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from devcluster.service import DevService
from wharf.errors import Failure
from wharf.haproxy import send


def runtime_command(socket_path: Path | str, command: str, timeout: float = 2.0) -> str:
    """One command to an HAProxy stats/admin or master socket (`wharf.haproxy.send`, a shorter timeout)."""
    return send(socket_path, command, timeout)


def check_config(path: Path) -> None:
    """Validate a config with the real binary (`haproxy -c`); fail with its first error line."""
    result = subprocess.run(["haproxy", "-c", "-q", "-f", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr + result.stdout).splitlines() if "ALERT" in ln]
        raise Failure(f"{path}: haproxy -c failed: {(lines or ['exit ' + str(result.returncode)])[0]}")


class HAProxy(DevService):
    name = "haproxy"
    port_flags = ("--haproxy-port", "--haproxy-stats-port")
    binaries = ("haproxy",)

    @property
    def config(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.dir / "admin.sock"

    @property
    def master_socket(self) -> Path:
        return self.dir / "master.sock"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "global\n"
            f"    stats socket {self.admin_socket} mode 600 level admin expose-fd listeners\n"
            "    stats timeout 30s\n"
            "\n"
            "defaults\n"
            "    mode http\n"
            "    timeout connect 5s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            "    option idle-close-on-response\n"
            "\n"
            "frontend http_in\n"
            f"    bind 127.0.0.1:{self.ports['--haproxy-port']}\n"
            '    http-request return status 503 content-type text/plain string "no service\\n"\n'
            "\n"
            "listen stats\n"
            f"    bind 127.0.0.1:{self.ports['--haproxy-stats-port']}\n"
            "    http-request use-service prometheus-exporter if { path /metrics }\n"
            "    stats enable\n"
            "    stats uri /haproxy?stats\n"
        )
        check_config(self.config)

    def argv(self) -> list[str]:
        return ["haproxy", "-W", "-S", str(self.master_socket), "-f", str(self.config)]

    def probe(self) -> None:
        answer = runtime_command(self.admin_socket, "show info")
        if "Name: HAProxy" not in answer:
            raise RuntimeError(f"show info answered {answer[:80]!r}")

    def endpoints(self) -> dict[str, Any]:
        return {
            "http": f"127.0.0.1:{self.ports['--haproxy-port']}",
            "stats": f"http://127.0.0.1:{self.ports['--haproxy-stats-port']}/haproxy?stats",
            "metrics": f"http://127.0.0.1:{self.ports['--haproxy-stats-port']}/metrics",
            "admin_socket": str(self.admin_socket),
            "master_socket": str(self.master_socket),
            "config": str(self.config),
        }

    def env(self) -> dict[str, str]:
        return {
            "WHARF_HAPROXY_CONFIG": str(self.config),
            "WHARF_HAPROXY_SOCKET": str(self.admin_socket),
            "WHARF_HAPROXY_MASTER_SOCKET": str(self.master_socket),
            "WHARF_HAPROXY_HTTP": f"127.0.0.1:{self.ports['--haproxy-port']}",
        }
