"""A node lost: how soon its instances leave HAProxy's rotation (goal: within Consul's own failure
detection + 1 s); and how long `wharf dev up --nodes 5` takes (goal: 5 s).

Node loss: a dev cluster of its own with 3 nodes (`--nodes 3 --registrator`: a Consul client agent
and a registrator per node), an app of 6 instances spread 2 per node, `wharf render run` routing it
through the cluster's HAProxy from the server's catalog, and steady load through HAProxy by its
virtual host. Each round kills one node (`wharf dev kill-node K`: its agent and registrator SIGKILLed,
its containers left running) and times, from just before the kill, (a) until the Consul server's
`/v1/health/node/node<K>` shows `serfHealth` critical (Consul's failure detection), (b) until
HAProxy's runtime API shows the node's two servers out of rotation; then starts it again
(`restart-node`) and waits for all 6 in rotation before the next round. Warm: the cluster, the
renderer and the load run before the first kill. Every request's outcome is counted.

Up: `wharf dev up --json` then `wharf dev down --purge`, timed from the command's start to its exit
(every service healthy, the Docker engine's base image already built by an earlier run), with no
node flag and with `--nodes 5 --registrator`.

    python bench/nodes.py [--rounds 6] [--ups 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.lab import serving, spread_app  # noqa: E402
from devcluster.load import Load  # noqa: E402
from devcluster.process import free_port, spawn, stop  # noqa: E402
from wharf.contracts.marathon_lb import app_name  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

APP, VHOST = "/bench-nodes/web", "bench-nodes.test"


def wharf(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "wharf", *args], text=True, capture_output=True,
                          env={**os.environ, "WHARF_STATE_DIR": str(state_dir)}, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"wharf {' '.join(args)}: {done.stderr.strip()}")
    return done


def critical(consul: str, node: str) -> bool:
    checks = requests.get(f"{consul}/v1/health/node/{node}", timeout=2).json()
    return any(c["CheckID"] == "serfHealth" and c["Status"] == "critical" for c in checks)


def one_round(state_dir: Path, env: dict[str, str], node: int) -> tuple[float, float]:
    """Kill node `node`: (seconds until Consul marks it failed, until HAProxy drops its servers)."""
    consul, socket, backend = f"http://{env['CONSUL_HTTP_ADDR']}", env["WHARF_HAPROXY_SOCKET"], app_name(APP) + "_"
    times: dict[str, float] = {}
    started = time.monotonic()
    wharf(state_dir, "dev", "kill-node", str(node))

    def seen() -> bool:
        if "detected" not in times and critical(consul, f"node{node}"):
            times["detected"] = time.monotonic() - started
        if "rotation" not in times and serving(socket, backend) == 4:
            times["rotation"] = time.monotonic() - started
        return len(times) == 2

    wait_until(seen, 120, 0.02, f"node{node} failed and out of rotation")
    wharf(state_dir, "dev", "restart-node", str(node))
    wait_until(lambda: serving(socket, backend) == 6, 120, 0.1, "all 6 in rotation again")
    return times["detected"], times["rotation"]


def node_loss(root: Path, rounds: int) -> None:
    state_dir = root / "loss"
    wharf(state_dir, "dev", "up", "--nodes", "3", "--registrator")
    env = {**os.environ, **Cluster(state_dir).env()}
    renderer = spawn([sys.executable, "-m", "wharf", "render", "run", "--template", "haproxy", "--dest",
                      env["WHARF_HAPROXY_CONFIG"], "--stats-port", str(free_port()), "--wait", "0"],
                     root / "render.log", env=env)
    try:
        marathon = env["MARATHON_URL"].split(",")[0]
        requests.post(f"{marathon}/v2/apps", json=spread_app(APP, VHOST, 6, 3), timeout=10).raise_for_status()
        wait_until(lambda: serving(env["WHARF_HAPROXY_SOCKET"], app_name(APP) + "_") == 6, 120, 0.1,
                   "all 6 in rotation")
        port = int(env["WHARF_HAPROXY_HTTP"].rsplit(":", 1)[1])
        with Load(port, VHOST, rate=100, connections=4) as load:
            results = [one_round(state_dir, env, n % 3 + 1) for n in range(rounds)]
    finally:
        stop(renderer)
        wharf(state_dir, "dev", "down", "--purge")
    print(f"node killed -> out of HAProxy's rotation, {rounds} rounds (3 nodes, 6 instances, warm; seconds):")
    print(f"  {'round':6}{'Consul detected':>18}{'out of rotation':>18}{'after detection':>18}")
    for n, (detected, rotation) in enumerate(results, 1):
        print(f"  {n:<6}{detected:>18.2f}{rotation:>18.2f}{rotation - detected:>18.2f}")
    for name, column in (("median", statistics.median), ("max", max)):
        d, r = column(x[0] for x in results), column(x[1] for x in results)
        print(f"  {name:6}{d:>18.2f}{r:>18.2f}{column(x[1] - x[0] for x in results):>18.2f}")
    print("  both read in one loop: the server's health of the node, then HAProxy's servers, every 20 ms (a loop")
    print("  takes about 25 ms): 0.00 after detection means HAProxy had dropped them by the same loop")
    print(f"  load through HAProxy meanwhile: {load.summary()} (the killed nodes' containers keep answering)")


def ups(root: Path, count: int) -> None:
    rows = []
    for flags in ((), ("--nodes", "5", "--registrator")):
        took = []
        for n in range(count):
            state_dir = root / f"up-{len(flags)}-{n}"
            started = time.monotonic()
            status = json.loads(wharf(state_dir, "dev", "up", "--json", *flags).stdout)
            took.append(time.monotonic() - started)
            assert status["running"], status
            wharf(state_dir, "dev", "down", "--purge")
        rows.append((" ".join(flags) or "(no node flag)", took))
    print(f"`wharf dev up` until every service is healthy, {count} runs each (seconds):")
    for name, took in rows:
        print(f"  {name:28} median {statistics.median(took):5.2f}  max {max(took):5.2f}  "
              f"({', '.join(f'{t:.2f}' for t in took)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ups", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-nodes-") as folder:
        ups(Path(folder), args.ups)
        node_loss(Path(folder), args.rounds)


if __name__ == "__main__":
    main()
