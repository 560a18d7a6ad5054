"""Reloading a real nginx: the reload returns once nginx serves the new config, and a config nginx
cannot apply is a failure, not a silent no-op."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from consul_templates import apply
from devcluster.nginx import Nginx
from tests.integration.render_support import get, own_nginx

pytestmark = pytest.mark.integration


def _config(nginx: Nginx, body: str, port: int | None = None) -> str:
    """The dev nginx's config, answering `body` on its own port (and on `port` too, if given)."""
    return (f"pid {nginx.dir / 'nginx.pid'};\n"
            f"error_log {nginx.dir / 'logs' / 'error.log'} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "    access_log off;\n"
            f"    client_body_temp_path {nginx.dir / 'tmp' / 'client_body'};\n"
            f"    proxy_temp_path {nginx.dir / 'tmp' / 'proxy'};\n"
            "    server {\n"
            f"        listen 127.0.0.1:{nginx.ports['--nginx-port']};\n"
            + (f"        listen 127.0.0.1:{port};\n" if port else "")
            + f'        location / {{ return 200 "{body}\\n"; }}\n'
            "    }\n"
            "}\n")


def test_the_first_request_after_a_reload_gets_the_new_config(tmp_path: Path) -> None:
    pid = os.getpid()
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():
        pytest.skip("this kernel's /proc lists no children: the reload cannot tell when nginx has the new config")
    with own_nginx(tmp_path / "nginx") as nginx:
        port = nginx.ports["--nginx-port"]
        for version in range(1, 6):
            nginx.config.write_text(_config(nginx, f"version {version}"))
            apply.nginx_reload(nginx.config, str(nginx.dir))
            assert get(port) == (200, f"version {version}\n"), "no request in between: the very next one"


def test_a_config_nginx_cannot_apply_fails_the_reload_and_the_old_one_keeps_serving(tmp_path: Path) -> None:
    with own_nginx(tmp_path / "nginx") as nginx, socket.socket() as taken:
        port = nginx.ports["--nginx-port"]
        nginx.config.write_text(_config(nginx, "good"))
        apply.nginx_reload(nginx.config, str(nginx.dir))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        nginx.config.write_text(_config(nginx, "never", port=taken.getsockname()[1]))  # `nginx -t` passes
        with pytest.raises(apply.ApplyFailed, match=r"started no worker on the new config"):
            apply.nginx_reload(nginx.config, str(nginx.dir), timeout=2.0)
        assert get(port) == (200, "good\n")
