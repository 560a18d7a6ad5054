"""The renderer's step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

`wharf render once` writes the dev cluster's HAProxy and nginx configs from Consul; the demo's `web`
then answers through HAProxy by its vhost and through nginx. `wharf render run` keeps them in step,
and a scale-up reaches HAProxy through the Runtime API with no reload (the master's `show proc`
lists the same worker before and after).

If Consul has no `web` from the deploy and registrator steps, this step starts busybox httpd
containers of its own on the dev cluster's Docker engine and registers them as the registrator
would (Meta with the app's HAPROXY_* labels), and removes them at the end.

    python -m consul_templates.demo
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consul_templates.apply import parse_show_proc, socket_command
from consul_templates.watch import consul_client
from devcluster.cluster import Cluster
from devcluster.process import free_port

APP_ID, SERVICE_PORT, VHOST = "/web", 10000, "web.shop.localhost"
IMAGE = "wharf/busybox:latest"


def _wait(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise SystemExit(f"demo-render: timed out after {seconds:g}s waiting for {what}")


def _get(address: str, host: str) -> str:
    request = urllib.request.Request(f"http://{address}/", headers={"Host": host, "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return str(response.read().decode().strip())
    except OSError as exc:
        return f"({exc})"


def _worker(master: str) -> int:
    return next(p.pid for p in parse_show_proc(socket_command(master, "show proc"))
                if p.kind == "worker" and p.reloads == 0)


def _run(*argv: str) -> None:
    print("$ wharf " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "wharf", *argv], check=True)


class OwnWeb:
    """busybox httpd containers registered in Consul as the registrator would register /web."""

    def __init__(self, env: dict[str, str], client: Any) -> None:
        import docker

        self.docker = docker.DockerClient(base_url=env["DOCKER_HOST"])
        self.consul = client
        self.containers: list[Any] = []
        self.ids: list[str] = []

    def add(self) -> None:
        port = free_port()
        n = len(self.containers) + 1
        script = (f"mkdir -p /www && echo 'web {n} on port {port}' > /www/index.html && "
                  f"exec httpd -f -p 127.0.0.1:{port} -h /www")
        container = self.docker.containers.run(IMAGE, ["sh", "-c", script], network_mode="host", detach=True,
                                               name=f"wharf-render-demo-web-{n}", labels={"wharf.demo": "render"})
        self.containers.append(container)
        sid = f"127.0.0.1:{container.name}:{port}"
        self.consul.agent.service.register(
            "web", service_id=sid, address="127.0.0.1", port=port,
            meta={"wharf_owner": "demo-render", "container_id": container.id[:12], "marathon_app_id": APP_ID,
                  "service_port": str(SERVICE_PORT), "port_index": "0", "HAPROXY_GROUP": "external",
                  "HAPROXY_0_VHOST": VHOST, "HAPROXY_0_MODE": "http"},
            check={"HTTP": f"http://127.0.0.1:{port}/", "Interval": "1s", "Timeout": "1s"})
        self.ids.append(sid)
        print(f"  started container {container.name} (httpd on 127.0.0.1:{port}), registered {sid}", flush=True)

    def close(self) -> None:
        for sid in self.ids:
            self.consul.agent.service.deregister(sid)
        for container in self.containers:
            container.remove(force=True)


def main() -> int:
    cluster = Cluster(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    state = cluster.read_state()
    if state is None or not cluster.running():
        raise SystemExit("demo-render: no dev cluster running (run make demo)")
    env = cluster.env()
    os.environ.update(env)
    client = consul_client(env["CONSUL_HTTP_ADDR"], env.get("CONSUL_HTTP_TOKEN"))
    haproxy_http, nginx_http = env["WHARF_HAPROXY_HTTP"], env["WHARF_NGINX_HTTP"]
    master = env["WHARF_HAPROXY_MASTER_SOCKET"]
    pairs = ["--template", "haproxy", "--dest", env["WHARF_HAPROXY_CONFIG"], "--template", "nginx",
             "--dest", env["WHARF_NGINX_CONF"], "--stats-port", str(state["ports"]["--haproxy-stats-port"])]

    _, entries = client.health.service("web")
    own = None
    if not any(e["Service"].get("Meta", {}).get("marathon_app_id") == APP_ID for e in entries):
        print("Consul has no /web from the deploy and registrator steps: registering two of our own", flush=True)
        own = OwnWeb(env, client)
        own.add()
        own.add()
    vhost = next((e["Service"]["Meta"].get("HAPROXY_0_VHOST") for e in entries
                  if e["Service"].get("Meta", {}).get("HAPROXY_0_VHOST")), VHOST).split(",")[0]
    daemon = None
    try:
        _wait(lambda: len(client.health.service("web", passing=True)[1]) >= 2, 60, "two passing /web instances")
        _run("render", "check", *pairs)
        _run("render", "once", *pairs)
        print(f"$ curl -H 'Host: {vhost}' http://{haproxy_http}/   ->  {_get(haproxy_http, vhost)}")
        print(f"$ curl -H 'Host: {vhost}' http://{nginx_http}/   ->  {_get(nginx_http, vhost)}", flush=True)
        print("$ wharf render run ... --wait 0  (in the background)", flush=True)
        log_path = Path(os.environ.get("WHARF_STATE_DIR") or ".") / "render-demo.log"
        print(f"  (its log: {log_path})", flush=True)
        with open(log_path, "w") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "wharf", "render", "run", *pairs, "--wait", "0"],
                                      stderr=log, text=True)
        time.sleep(1.0)
        before = _worker(master)
        print(f"HAProxy worker before the scale-up: {before}")
        if own is not None:
            own.add()
        else:
            import requests

            marathon = env["MARATHON_URL"].split(",")[0]
            count = requests.get(f"{marathon}/v2/apps{APP_ID}", timeout=5).json()["app"]["instances"]
            requests.put(f"{marathon}/v2/apps{APP_ID}", json={"instances": count + 1}, timeout=10).raise_for_status()
            print(f"  scaled {APP_ID} in Marathon to {count + 1} instances")
        want = len(client.health.service("web")[1])
        seen: set[str] = set()

        def all_answer() -> bool:
            seen.add(_get(haproxy_http, vhost))
            return len({s for s in seen if s.startswith("web")}) >= want

        _wait(all_answer, 60, "the new instance answering through HAProxy")
        after = _worker(master)
        print("through HAProxy by vhost, over a few requests:")
        for line in sorted(s for s in seen if s.startswith("web")):
            print("   ", line)
        print(f"HAProxy worker after the scale-up: {after} "
              f"({'the same worker: no reload' if after == before else 'a new worker: reloaded'})", flush=True)
        if after != before:
            return 1
    finally:
        if own is not None:  # our own web goes, and the running renderer takes it out of HAProxy
            own.close()
            if daemon is not None and daemon.poll() is None:
                try:
                    _wait(lambda: "web_10000" not in Path(env["WHARF_HAPROXY_CONFIG"]).read_text(), 30,
                          "the demo's own web leaving HAProxy")
                except SystemExit as exc:
                    print(exc)
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
