"""Real nginx (Debian's package) with its own prefix, in the foreground."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from devcluster.service import DevService

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class Nginx(DevService):
    name = "nginx"
    port_flags = ("--nginx-port",)
    binaries = ("nginx",)

    @property
    def config(self) -> Path:
        return self.dir / "conf" / "nginx.conf"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--nginx-port']}/"

    def prepare(self) -> None:
        for sub in ("conf", "logs", *(f"tmp/{t}" for t in TEMP_DIRS)):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        temp = "".join(f"    {t}_temp_path {self.dir / 'tmp' / t};\n" for t in TEMP_DIRS)
        self.config.write_text(
            "daemon off;\n"
            "worker_processes 1;\n"
            f"pid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'logs' / 'error.log'} warn;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.dir / 'logs' / 'access.log'};\n"
            f"{temp}"
            "    default_type text/plain;\n"
            "    server {\n"
            f"        listen 127.0.0.1:{self.ports['--nginx-port']};\n"
            '        location / { return 200 "wharf dev nginx\\n"; }\n'
            "    }\n"
            "}\n"
        )

    def argv(self) -> list[str]:
        return ["nginx", "-p", str(self.dir), "-e", str(self.dir / "logs" / "error.log"), "-c", str(self.config)]

    def probe(self) -> None:
        # Any answer from nginx itself is healthy: once `wharf render` writes the config, a request
        # for no known virtual host is rightly a 404.
        try:
            with urllib.request.urlopen(self.url, timeout=1.0) as response:
                server, status = response.headers.get("Server", ""), response.status
        except urllib.error.HTTPError as exc:
            server, status = exc.headers.get("Server", ""), exc.code
        if not server.startswith("nginx") or status >= 500:
            raise RuntimeError(f"GET / answered {status} from {server or 'an unknown server'}")

    def endpoints(self) -> dict[str, Any]:
        return {"http": self.url, "prefix": str(self.dir), "config": str(self.config)}

    def env(self) -> dict[str, str]:
        return {
            "WHARF_NGINX_PREFIX": str(self.dir),
            "WHARF_NGINX_CONF": str(self.config),
            "WHARF_NGINX_HTTP": f"127.0.0.1:{self.ports['--nginx-port']}",
        }
