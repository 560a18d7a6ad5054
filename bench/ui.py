"""How soon a Consul change reaches `wharf ui`'s page (goal: p99 within 1 s), at N apps.

A dev cluster of its own (real Consul, Marathon's stand-in) holds N apps; each has one registration
in Consul. `wharf ui` serves them; this process holds the page's event stream (`/events`, what the
browser's EventSource reads) and, one app at a time, puts a registration into maintenance and takes
it out again. Timed: from just before the maintenance call to Consul's agent until the event in
which that app's consul link changed state has been read and parsed here. Warm: the server has been
running and reading before the first change. Also printed: the server's CPU seconds over the run.

    python bench/ui.py [--apps 1000] [--changes 40]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.process import cpu_seconds  # noqa: E402
from wharf.wait import wait_until  # noqa: E402


def populate(marathon: str, consul: str, n: int) -> list[str]:
    """N apps of no instance in Marathon, each with one registration (a passing TTL check) in Consul."""
    ids = [f"/bench-ui/app{i:04d}" for i in range(n)]
    session = requests.Session()
    for i, app_id in enumerate(ids):
        answer = session.post(f"{marathon}/v2/apps", json={"id": app_id, "cmd": "sleep 1", "instances": 0,
                                                            "cpus": 0.01, "mem": 8, "labels": {}}, timeout=10)
        answer.raise_for_status()
        service = {"ID": f"bench-ui-{i}", "Name": f"bench-ui-app{i:04d}", "Address": "127.0.0.2", "Port": 20000 + i,
                   "Meta": {"marathon_app_id": app_id, "mesos_task_id": f"bench-ui_app{i:04d}.instance-0._app.1"},
                   "Check": {"CheckID": f"bench-ui-{i}:ttl", "TTL": "1h", "Status": "passing"}}
        session.put(f"{consul}/v1/agent/service/register", json=service, timeout=10).raise_for_status()
    return ids


def read_events(url: str, out: queue.Queue[tuple[float, dict[str, Any]]], stop: threading.Event) -> None:
    """The page's event stream: each event's arrival time and its JSON."""
    try:
        with requests.get(url, stream=True, timeout=(5, 60)) as answer:
            data = []
            for line in answer.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    out.put((time.monotonic(), json.loads("".join(data))))
                    data = []
    except requests.RequestException:
        if not stop.is_set():
            raise


def consul_state(event: dict[str, Any], app_id: str) -> str | None:
    row = next((a for a in event["apps"] if a["app"] == app_id), None)
    return next((link["state"] for link in row["links"] if link["name"] == "consul"), None) if row else None


def run(n: int, changes: int, state_dir: Path) -> None:
    cluster = Cluster(state_dir)
    cluster.up()
    server = None
    try:
        env = {**os.environ, **cluster.env()}
        marathon, consul = env["MARATHON_URL"], "http://" + env["CONSUL_HTTP_ADDR"].split("://")[-1]
        started = time.monotonic()
        ids = populate(marathon, consul, n)
        print(f"{n} apps and registrations made in {time.monotonic() - started:.1f} s")
        log = state_dir / "ui.log"
        with open(log, "w") as out:
            server = subprocess.Popen([sys.executable, "-m", "wharf", "ui", "--listen", "127.0.0.1:0"], env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
        found = wait_until(lambda: re.search(r"wharf ui: (http://\S+)", log.read_text()), 30, 0.05, "the address")
        address = found.group(1).rstrip("/")
        events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        stop = threading.Event()
        threading.Thread(target=read_events, args=(f"{address}/events", events, stop), daemon=True).start()
        while True:  # warm: every app listed once
            _, event = events.get(timeout=60)
            if len(event["apps"]) >= n:
                break
        cpu_before, latencies = cpu_seconds(server.pid), []
        session = requests.Session()
        for k in range(changes):
            i = (k * 7919) % n
            for enable, wanted in (("true", "broken"), ("false", "ok")):
                asked = time.monotonic()
                session.put(f"{consul}/v1/agent/service/maintenance/bench-ui-{i}",
                            params={"enable": enable, "reason": "bench"}, timeout=10).raise_for_status()
                while True:
                    at, event = events.get(timeout=30)
                    if consul_state(event, ids[i]) == wanted:
                        latencies.append(at - asked)
                        break
        cpu = cpu_seconds(server.pid) - cpu_before
        stop.set()
        q = statistics.quantiles(latencies, n=100)
        print(f"wharf ui, {n} apps, {len(latencies)} changes (warm; Consul's maintenance call -> the event parsed):")
        print(f"  p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms; server CPU {cpu:.1f} s over the changes")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        cluster.down(purge=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as folder:
        run(args.apps, args.changes, Path(folder))


if __name__ == "__main__":
    main()
