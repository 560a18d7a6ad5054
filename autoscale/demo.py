"""The autoscaler's step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

wrk sends load by vhost through the dev cluster's HAProxy to the demo's `web` app; `wharf
autoscale run` scales it up, then back down once the load stops, printing each decision with its
reason. If the dev cluster has no routed `/web` yet (the routing and deploy steps come from other
parts of the demo), this step brings a small app of its own, `/autoscale-demo/web`, routes it with
`devcluster.routes` and puts HAProxy's config back afterwards.

    python -m autoscale.demo [--max 4] [--seconds 90]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Any

import requests

from autoscale.stats import StatsSource, backend_readings, parse_stat_csv
from devcluster.cluster import Cluster
from devcluster.haproxy import HAProxy, runtime_command
from devcluster.routes import Router

OWN_APP = "/autoscale-demo/web"
VHOST = "web.demo.test"


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"demo-autoscale: timed out after {seconds:g}s waiting for {what}")


def _instances(marathon: str, app_id: str) -> int:
    return int(requests.get(f"{marathon}/v2/apps{app_id}", timeout=5).json()["app"]["instances"])


def _echo(stream: IO[str]) -> None:
    for line in stream:
        if " scaled " in line or " would scale " in line or "action=up" in line or "action=down" in line \
                or "warning" in line or "error" in line:
            print("  autoscale:", line.rstrip(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=90.0, help="deadline for each phase")
    args = parser.parse_args(argv)
    cluster = Cluster(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    state = cluster.read_state()
    if state is None:
        raise SystemExit("demo-autoscale: no dev cluster running (wharf dev up)")
    haproxy = next(s for s in cluster.services(state["ports"]) if isinstance(s, HAProxy))
    marathon = cluster.env()["MARATHON_URL"].split(",")[0]
    stats_base = haproxy.endpoints()["stats"].rsplit("/haproxy", 1)[0]
    http = haproxy.endpoints()["http"]

    apps = {a["id"]: a for a in requests.get(f"{marathon}/v2/apps", timeout=5).json()["apps"]}
    web = apps.get("/web")
    backends = backend_readings(parse_stat_csv(StatsSource(str(haproxy.admin_socket)).read()), "demo", 0)
    routed = web is not None and any(name.startswith("web_") for name in backends)
    router, saved_config, app_id, vhost = None, None, "/web", None
    if routed:
        assert web is not None
        vhost = (web.get("labels") or {}).get("HAPROXY_0_VHOST")
        backend = next(name for name in backends if name.startswith("web_"))
        flags = ["--apps", backend, "--target-rps", "20", "--max-instances", str(args.max),
                 "--scale-down-stabilization", "10"]
        print(f"demo-autoscale: scaling the demo's /web (backend {backend})")
    else:
        app_id, vhost = OWN_APP, VHOST
        print(f"demo-autoscale: no routed /web in this cluster yet; using a small app of its own, {OWN_APP}")
        app = {"id": OWN_APP, "instances": 1, "cpus": 0.01, "mem": 16,
               "cmd": "echo hello from $MESOS_TASK_ID > index.html && exec httpd -f -p $HOST:$PORT0 -h .",
               "container": {"type": "DOCKER", "docker": {"image": "wharf/busybox:latest"}},
               "portDefinitions": [{"port": 0}],
               "labels": {"HAPROXY_0_VHOST": VHOST, "wharf.autoscale.target_rps": "20", "wharf.autoscale.min": "1",
                          "wharf.autoscale.max": str(args.max), "wharf.autoscale.scale_down_stabilization": "10"}}
        answer = requests.put(f"{marathon}/v2/apps{OWN_APP}", json=app, timeout=10)
        if answer.status_code >= 400:
            raise SystemExit(f"demo-autoscale: Marathon refused the app: {answer.status_code} {answer.text[:200]}")
        saved_config = haproxy.config.read_text()
        router = Router(haproxy, marathon)
        router.start()
        flags = []
    headers = {"Host": vhost} if vhost else {}

    daemon = subprocess.Popen([sys.executable, "-m", "wharf", "autoscale", "run", "--marathon", marathon,
                               "--haproxy", stats_base, "--interval", "2", *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert daemon.stdout is not None
    threading.Thread(target=_echo, args=(daemon.stdout,), daemon=True).start()
    load = None
    try:
        _wait(lambda: requests.get(f"http://{http}/", headers=headers, timeout=5).status_code == 200,
              args.seconds, f"{app_id} to answer through HAProxy")
        start = _instances(marathon, app_id)
        print(f"demo-autoscale: {app_id} runs {start} instance(s); wrk load through HAProxy ({vhost or 'no vhost'})")
        load = subprocess.Popen(["wrk", "-t1", "-c4", f"-d{int(args.seconds)}s",
                                 *(["-H", f"Host: {vhost}"] if vhost else []), f"http://{http}/"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _instances(marathon, app_id) >= args.max, args.seconds, f"{app_id} to reach {args.max}")
        print(f"demo-autoscale: {app_id} scaled up to {_instances(marathon, app_id)}; under load, status says:")
        status = [a for a in flags if a != "--scale-down-stabilization" and a != "10"]
        subprocess.run([sys.executable, "-m", "wharf", "autoscale", "status", "--marathon", marathon,
                        "--haproxy", stats_base, "--window", "2", *status], check=False)
        print("demo-autoscale: stopping the load")
        load.terminate()
        load.wait(10)
        _wait(lambda: _instances(marathon, app_id) <= 1, args.seconds, f"{app_id} to come back down")
        print(f"demo-autoscale: {app_id} back to {_instances(marathon, app_id)} after the down window")
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
        if router is not None:
            router.stop()
            requests.delete(f"{marathon}/v2/apps{OWN_APP}", params={"force": "true"}, timeout=10)
        if saved_config is not None:
            haproxy.config.write_text(saved_config)
            runtime_command(haproxy.master_socket, "reload")
    return 0


if __name__ == "__main__":
    sys.exit(main())
