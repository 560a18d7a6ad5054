"""How long `wharf trace` takes, for one app and for `--all`, at 1,000 apps (goal: 1 s each).

One local HTTP server on 127.0.0.1 answers as Marathon, Consul and HAProxy's stats page would for a
generated cluster: N apps of 3 tasks each over 10 nodes, every task registered passing in Consul and
UP in HAProxy's statistics, one autoscaled app in three with a decision in KV. Timed:

- `wharf trace APP --json` and `wharf trace --all --json` as processes: cold, interpreter start,
  imports, every read and the judgement (median of `--repeats`);
- in process, warm: the one read (`observe.gather.read_view`) and the judgement of every app
  (`observe.links.trace`), apart (median of `--repeats`).

    python bench/trace.py [--apps 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from observe.gather import read_view  # noqa: E402
from observe.links import app_ids, trace  # noqa: E402
from wharf.consul_http import client  # noqa: E402
from wharf.haproxy import StatsSource  # noqa: E402
from wharf.marathon import MarathonClient  # noqa: E402

NODES, TASKS = 10, 3


def cluster(n_apps: int) -> dict[str, bytes]:
    """Path -> answer body, for a cluster of `n_apps` apps."""
    apps: list[dict[str, Any]] = []
    nodes: dict[str, dict[str, Any]] = {f"node{k}": {} for k in range(NODES)}
    checks: list[dict[str, Any]] = []
    rows: list[str] = []
    kv: list[dict[str, Any]] = []
    rows.append("# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,addr,rate")
    for a in range(n_apps):
        app_id, port = f"/shop/app{a:04d}", 10000 + a
        tasks = []
        for t in range(TASKS):
            node, host_port = f"node{(a + t) % NODES}", 31000 + (a * TASKS + t) % 30000
            host = f"127.0.0.{2 + (a + t) % NODES}"
            task_id = f"shop_app{a:04d}.instance-{t}._app.1"
            tasks.append({"id": task_id, "appId": app_id, "host": host, "ports": [host_port], "state": "TASK_RUNNING",
                          "healthCheckResults": [{"alive": True}]})
            sid = f"{node}:mesos-{a}-{t}:{host_port}"
            nodes[node][sid] = {"ID": sid, "Service": f"shop-app{a:04d}", "Address": host, "Port": host_port,
                                "Meta": {"marathon_app_id": app_id, "mesos_task_id": task_id, "port_index": "0",
                                         "service_port": str(port)}}
            checks.append({"Node": node, "CheckID": f"service:{sid}", "ServiceID": sid, "Name": "Marathon health",
                           "Status": "passing"})
            rows.append(f"shop_app{a:04d}_{port},s{t},0,0,0,0,,0,UP,{host}:{host_port},1")
        labels = {"wharf.commit": "3f2a9c1", **({"wharf.autoscale.target_rps": "50"} if a % 3 == 0 else {})}
        apps.append({"id": app_id, "instances": TASKS, "tasksRunning": TASKS, "tasksHealthy": TASKS,
                     "healthChecks": [{"protocol": "HTTP"}], "portDefinitions": [{"port": port}], "labels": labels,
                     "version": "2026-12-01T00:00:00.000Z", "tasks": tasks})
        if a % 3 == 0:
            decision = {"app": app_id, "at": time.time(), "action": "hold", "current": 3, "target": 3,
                        "recommendation": 3, "min": 1, "max": 6, "rps": 100.0, "target_rps": 50.0, "reason": "steady"}
            kv.append({"Key": f"wharf/autoscale/decisions/shop/app{a:04d}",
                       "Value": base64.b64encode(json.dumps(decision).encode()).decode()})
    checks += [{"Node": n, "CheckID": "serfHealth", "ServiceID": "", "Name": "Serf", "Status": "passing"}
               for n in nodes]
    answers = {"/v2/apps": {"apps": apps}, "/v2/deployments": [],
               "/v1/catalog/nodes": [{"Node": n, "Address": "127.0.0.2"} for n in nodes],
               "/v1/health/state/any": checks, "/v1/kv/wharf/autoscale/decisions/": kv}
    for name, services in nodes.items():
        answers[f"/v1/catalog/node/{name}"] = {"Node": {"Node": name, "Address": "127.0.0.2"}, "Services": services}
    out = {path: json.dumps(body).encode() for path, body in answers.items()}
    out["/haproxy"] = ("\n".join(rows) + "\n").encode()
    return out


def serve(answers: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    """A server on 127.0.0.1 answering `answers` by path (query ignored); its base URL."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = answers.get(urlsplit(self.path).path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Consul-Index", "7")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def median_of(repeats: int, run: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    server, url = serve(cluster(args.apps))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))},
           "MARATHON_URL": url, "CONSUL_HTTP_ADDR": url, "WHARF_HAPROXY_SOCKET": url}

    def process(*argv: str) -> Callable[[], Any]:
        def run() -> None:
            done = subprocess.run([sys.executable, "-m", "wharf", "trace", *argv, "--json"], env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"wharf trace {' '.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
        return run

    marathon, consul = MarathonClient([url], timeout=10), client(url, timeout=10)
    sources = [StatsSource.parse(url)]  # its stats page at /haproxy?stats;csv
    view = read_view(marathon, consul, sources)
    assert len(app_ids(view)) == args.apps and all(trace(view, a).broken is None for a in app_ids(view))
    one = median_of(args.repeats, process("/shop/app0001"))
    every = median_of(args.repeats, process("--all"))
    reading = median_of(args.repeats, lambda: read_view(marathon, consul, sources))
    judging = median_of(args.repeats, lambda: [trace(view, a) for a in app_ids(view)])
    server.shutdown()
    print(f"{args.apps} apps x {TASKS} tasks over {NODES} nodes, every link holding; local HTTP server on 127.0.0.1 "
          f"as Marathon, Consul and HAProxy's stats page; median of {args.repeats}")
    print(f"wharf trace APP --json, a process (cold: start, imports, reads, judgement): {one * 1000:7.0f} ms")
    print(f"wharf trace --all --json, a process (cold):                            {every * 1000:7.0f} ms")
    print(f"in process, warm: the one read {reading * 1000:.0f} ms; judging all {args.apps} apps "
          f"{judging * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
