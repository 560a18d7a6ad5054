"""The drain step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

/web is routed by `wharf render run` (in the background since the render step). It is scaled up to
four instances, then steady load goes through HAProxy by its vhost while `wharf apps scale /web 2`
takes two away: they leave rotation first (Consul maintenance, which the renderer applies through
HAProxy's Runtime API), finish their sessions, then exactly those two are killed. Every request's
outcome is counted and printed.

    python -m devcluster.demos.drain
"""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from devcluster.cluster import Cluster
from devcluster.haproxy import HAProxy
from devcluster.load import Load
from wharf.contracts.marathon_lb import app_name
from wharf.errors import TimedOut
from wharf.haproxy import send, servers_state
from wharf.wait import wait_until

APP_ID, UP, DOWN, SECONDS = "/web", 4, 2, 120.0


def _serving(haproxy: HAProxy) -> int:
    state = servers_state(send(haproxy.admin_socket, "show servers state"))
    return sum(1 for (backend, _), server in state.items() if backend.startswith(app_name(APP_ID) + "_") and server.up)


def _wharf(*argv: str, env: dict[str, str]) -> None:
    print("$ wharf " + " ".join(argv), flush=True)
    result = subprocess.run([sys.executable, "-m", "wharf", *argv], env=env, text=True, timeout=SECONDS + 60)
    if result.returncode != 0:
        raise SystemExit(f"demo-drain: wharf {' '.join(argv)} exited {result.returncode}")


def main() -> int:
    cluster = Cluster(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    state = cluster.read_state()
    if state is None or not cluster.running():
        raise SystemExit("demo-drain: no dev cluster running (run make demo)")
    haproxy = next(s for s in cluster.services(state["ports"]) if isinstance(s, HAProxy))
    env = {**os.environ, **cluster.env()}
    marathon = env["MARATHON_URL"].split(",")[0]
    app = requests.get(f"{marathon}/v2/apps{APP_ID}", timeout=10).json()["app"]
    vhost = str(app["labels"]["HAPROXY_0_VHOST"]).split(",")[0]
    try:  # the step before may have left a deployment running (a scale-down in its kill grace)
        wait_until(lambda: not requests.get(f"{marathon}/v2/apps{APP_ID}", timeout=10).json()["app"]["deployments"],
                   SECONDS, 0.2, f"{APP_ID}'s deployments to end")
    except TimedOut as exc:
        raise SystemExit(f"demo-drain: {exc.message}") from None
    _wharf("apps", "scale", APP_ID, str(UP), "--timeout", str(int(SECONDS)), env=env)
    try:
        wait_until(lambda: _serving(haproxy) == UP, SECONDS, 0.1, f"{UP} instances of {APP_ID} in HAProxy")
    except TimedOut as exc:
        raise SystemExit(f"demo-drain: {exc.message}") from None
    http_port = int(haproxy.endpoints()["http"].rsplit(":", 1)[1])
    load = Load(http_port, vhost, rate=200, connections=8)
    print(f"demo-drain: 200 requests a second over 8 keep-alive connections to {vhost} through HAProxy",
          flush=True)
    with load:
        wait_until(lambda: load.total >= 400, SECONDS, 0.05, "load to flow")
        _wharf("apps", "scale", APP_ID, str(DOWN), "--drain-timeout", "10", "--timeout", str(int(SECONDS)), env=env)
        settled = load.total
        wait_until(lambda: load.total >= settled + 400, SECONDS, 0.05, "load after the scale-down")
    print(f"demo-drain: {load.summary()}; failed: {load.failed()}", flush=True)
    return 1 if load.failed() else 0


if __name__ == "__main__":
    raise SystemExit(main())
