"""Failed requests through changes, under steady load through HAProxy.

A dev cluster of its own (`wharf dev up` in a temporary state directory: ZooKeeper, the Mesos and
Marathon stand-ins, a Docker engine, Consul), and beside it the chain a user runs (`devcluster.lab`):
an HAProxy, `wharf registrator run` and `wharf render run`. For each change and each kind of app,
a fresh Marathon app of busybox httpd is deployed and routed by its vhost, then 200 requests a
second go through HAProxy over 8 keep-alive connections (`devcluster.load`, every request's outcome
counted: status code, connection error, timeout) for 3 s before the change, through it, and 3 s
after it has settled. Two kinds of app: one that keeps serving through its 3 s kill grace period
(httpd as PID 1 ignores SIGTERM) and one that exits at once on SIGTERM. Changes:

- `scale 10 -> 1 (wharf apps scale)`: drain before kill (`wharf.drain`);
- `scale 10 -> 1 (Marathon)`: the count lowered in Marathon, which picks and kills (wharf does not
  decide these kills: the registrator's drain on Docker's `kill` and HAProxy's retries are all);
- `rolling restart (Marathon)`: `POST /v2/apps/{id}/restart`, Marathon replacing every instance;
- `scale 1 -> 10, 5 s start`: new instances that listen 5 s after they start (health checks gate them);
- `renderer restart`: `wharf render run` stopped (SIGTERM) and started again;
- `reload storm`: five other apps deployed and removed, each a structural change (an HAProxy reload).

Not here yet: the autoscaler's scale-down, a blue/green deploy, and marathon-lb beside wharf under
the same load. Everything listens on 127.0.0.0/8. The table is what this run measured.

    python bench/zero_downtime.py [--only SUBSTRING] [--rate 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.lab import Lab, Systems, run, web_app  # noqa: E402
from devcluster.load import Load  # noqa: E402
from wharf.contracts.marathon_lb import app_name  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

SETTLE = 3.0


class Bench:
    def __init__(self, lab: Lab, marathon: str, rate: float) -> None:
        self.lab, self.marathon, self.rate = lab, marathon, rate

    def deploy(self, app: dict[str, Any]) -> str:
        assert requests.post(f"{self.marathon}/v2/apps", json=app, timeout=10).status_code == 201
        prefix = app_name(app["id"]) + "_"
        wait_until(lambda: self.lab.serving(prefix) == app["instances"], 120, 0.1, "the app routed")
        return prefix

    def remove(self, app_id: str) -> None:
        requests.delete(f"{self.marathon}/v2/apps{app_id}", params={"force": "true"}, timeout=10)

    def settled(self, app_id: str, prefix: str, instances: int) -> bool:
        app = requests.get(f"{self.marathon}/v2/apps{app_id}", timeout=10).json()["app"]
        healthy = app.get("tasksHealthy", 0) if app.get("healthChecks") else app.get("tasksRunning", 0)
        return (not app.get("deployments") and healthy == instances == app.get("tasksRunning")
                and self.lab.serving(prefix) == instances)

    def measure(self, app: dict[str, Any], change: Callable[[str, str], int]) -> tuple[Counter[str], float]:
        """Deploy, load, change, wait for the end state (`change` returns the instance count), load."""
        prefix = self.deploy(app)
        host = app["labels"]["HAPROXY_0_VHOST"]
        try:
            with Load(self.lab.http_port, host, rate=self.rate, connections=8) as load:
                time.sleep(SETTLE)  # the steady load before the change, by design
                started = time.monotonic()
                final = change(app["id"], prefix)
                wait_until(lambda: self.settled(app["id"], prefix, final), 180, 0.2, "the change to settle")
                took = time.monotonic() - started
                time.sleep(SETTLE)
            return load.outcomes, took
        finally:
            self.remove(app["id"])


def wharf_scale(bench: Bench, n: int) -> Callable[[str, str], int]:
    def change(app_id: str, prefix: str) -> int:
        env = {**bench.lab.env(), "WHARF_HAPROXY_SOCKET": str(bench.lab.haproxy.admin_socket)}
        result = run(["apps", "scale", app_id, str(n), "--drain-timeout", "10", "--json"], env)
        if result.returncode != 0:
            raise SystemExit(f"wharf apps scale: {result.stderr.strip()}")
        return n
    return change


def marathon_scale(bench: Bench, n: int) -> Callable[[str, str], int]:
    def change(app_id: str, prefix: str) -> int:
        requests.put(f"{bench.marathon}/v2/apps{app_id}", json={"instances": n}, timeout=10).raise_for_status()
        return n
    return change


def restart(bench: Bench) -> Callable[[str, str], int]:
    def change(app_id: str, prefix: str) -> int:
        requests.post(f"{bench.marathon}/v2/apps{app_id}/restart", timeout=10).raise_for_status()
        time.sleep(0.5)  # the deployment is listed by then
        return int(requests.get(f"{bench.marathon}/v2/apps{app_id}", timeout=10).json()["app"]["instances"])
    return change


def renderer_restart(bench: Bench) -> Callable[[str, str], int]:
    def change(app_id: str, prefix: str) -> int:
        bench.lab.stop_renderer()
        bench.lab.start_renderer()
        return int(requests.get(f"{bench.marathon}/v2/apps{app_id}", timeout=10).json()["app"]["instances"])
    return change


def reload_storm(bench: Bench) -> Callable[[str, str], int]:
    def change(app_id: str, prefix: str) -> int:
        others = [web_app(f"{app_id}-other{i}", f"other{i}-{uuid.uuid4().hex[:4]}.test", 1) for i in range(5)]
        for other in others:
            bench.deploy(other)
        for other in others:
            bench.remove(other["id"])
        return int(requests.get(f"{bench.marathon}/v2/apps{app_id}", timeout=10).json()["app"]["instances"])
    return change


def scenarios(bench: Bench) -> list[tuple[str, int, dict[str, Any], Callable[[str, str], int]]]:
    """(change, instances at the start, app options, the change)."""
    return [
        ("scale 10 -> 1 (wharf apps scale)", 10, {}, wharf_scale(bench, 1)),
        ("scale 10 -> 1 (Marathon)", 10, {}, marathon_scale(bench, 1)),
        ("rolling restart (Marathon)", 3, {"start_delay": 1}, restart(bench)),
        ("scale 1 -> 10, 5 s start", 1, {"start_delay": 5}, marathon_scale(bench, 10)),
        ("renderer restart", 3, {}, renderer_restart(bench)),
        ("reload storm (5 apps in, 5 out)", 3, {}, reload_storm(bench)),
    ]


def failed(outcomes: Counter[str]) -> str:
    bad = {k: v for k, v in outcomes.items() if k[:1] not in ("2", "3")}
    return ", ".join(f"{v} x {k}" for k, v in sorted(bad.items())) or "0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the changes whose name holds this")
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second (default 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wharf-zd-") as tmp:
        cluster = Cluster(Path(tmp) / "cluster")
        cluster.up()
        try:
            env = cluster.env()
            where = Systems(env["CONSUL_HTTP_ADDR"], env["MARATHON_URL"].split(",")[0], env["DOCKER_HOST"])
            with Lab(Path(tmp), where) as lab:
                bench = Bench(lab, where.marathon_url, args.rate)
                print(f"{args.rate:g} requests/s over 8 keep-alive connections through HAProxy, {SETTLE:g} s "
                      "before and after each change; wharf's registrator + renderer, the Marathon stand-in",
                      flush=True)
                print(f"{'change':34} {'app':22} {'requests':>9} {'failed':>24} {'change took':>12}", flush=True)
                for name, instances, options, change in scenarios(bench):
                    if args.only not in name:
                        continue
                    for kind, exits in (("keeps serving (3 s)", False), ("exits at once", True)):
                        app_id = f"/zd-{uuid.uuid4().hex[:6]}/web"
                        app = web_app(app_id, f"{app_id.split('/')[1]}.test", instances, exits_at_once=exits,
                                      **options)
                        outcomes, took = bench.measure(app, change)
                        print(f"{name:34} {kind:22} {sum(outcomes.values()):>9} {failed(outcomes):>24} "
                              f"{took:>10.1f} s", flush=True)
        finally:
            cluster.down(purge=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
