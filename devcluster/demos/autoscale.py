"""The autoscaler's step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

The /web that the git push deployed is registered by the registrator and routed by `wharf render
run` (both in the background since the earlier steps). wrk sends load by its vhost through the dev
cluster's HAProxy; `wharf autoscale run` scales /web up within its `wharf.autoscale.*` label bounds,
then back down once the load stops, printing each decision with its reason. The demo shortens the
autoscaler's interval and scale-down window through its command line.

    python -m devcluster.demos.autoscale [--seconds 90]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

import requests

from devcluster.cluster import Cluster
from devcluster.haproxy import HAProxy
from wharf.errors import TimedOut
from wharf.marathon import MarathonClient
from wharf.wait import wait_until

APP_ID = "/web"
#: the demo's shorter windows (labels still set target, bounds; a base policy needs --target-rps)
FLAGS = ["--interval", "2", "--scale-down-stabilization", "10"]


def _wait(predicate: Any, seconds: float, what: str) -> None:
    try:
        wait_until(predicate, seconds, 0.2, what)
    except TimedOut as exc:
        raise SystemExit(f"demo-autoscale: {exc.message}") from None


def _app(marathon: str) -> dict[str, Any]:
    app = MarathonClient([marathon], timeout=5).app(APP_ID)
    if app is None:
        raise SystemExit(f"demo-autoscale: Marathon has no {APP_ID} (demo-apps deploys it)")
    return app


def _echo(stream: IO[str], log: IO[str]) -> None:
    for line in stream:
        log.write(line)
        log.flush()
        if " scaled " in line or "warning" in line or "error" in line:
            print("  autoscale:", line.rstrip(), flush=True)


def _answers(url: str, vhost: str) -> bool:
    try:
        return requests.get(url, headers={"Host": vhost}, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _text(url: str, vhost: str) -> str:
    try:
        return requests.get(url, headers={"Host": vhost, "Connection": "close"}, timeout=5).text.strip()
    except requests.RequestException as exc:
        return f"({exc})"


def _show_answers(url: str, vhost: str, count: int, seconds: float) -> None:
    """Wait until all `count` instances have answered through HAProxy, then print their answers."""
    seen: set[str] = set()

    def all_answer() -> bool:
        seen.add(_text(url, vhost))
        return len({s for s in seen if s.startswith("web")}) >= count

    _wait(all_answer, seconds, f"{count} instances answering through HAProxy (wharf render run routing them)")
    print(f"demo-autoscale: {APP_ID} scaled up to {count}; through HAProxy by vhost {vhost}:")
    for line in sorted(s for s in seen if s.startswith("web")):
        print("   ", line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=90.0, help="deadline for each phase")
    args = parser.parse_args(argv)
    cluster = Cluster(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    state = cluster.read_state()
    if state is None or not cluster.running():
        raise SystemExit("demo-autoscale: no dev cluster running (run make demo)")
    haproxy = next(s for s in cluster.services(state["ports"]) if isinstance(s, HAProxy))
    marathon = cluster.env()["MARATHON_URL"].split(",")[0]
    stats_base = haproxy.endpoints()["stats"].rsplit("/haproxy", 1)[0]
    url = f"http://{haproxy.endpoints()['http']}/"
    log_path = cluster.state_dir / "autoscale.log"

    labels = _app(marathon).get("labels") or {}
    vhost = str(labels["HAPROXY_0_VHOST"]).split(",")[0]
    low, high = int(labels["wharf.autoscale.min"]), int(labels["wharf.autoscale.max"])
    _wait(lambda: _answers(url, vhost), args.seconds, f"{APP_ID} to answer through HAProxy by {vhost}")
    start = _app(marathon)["instances"]
    print(f"demo-autoscale: {APP_ID} runs {start} instances, bounds [{low}, {high}] and target "
          f"{labels['wharf.autoscale.target_rps']} rps per instance from its labels", flush=True)
    command = ["autoscale", "run", "--marathon", marathon, "--haproxy", stats_base,
               "--target-rps", labels["wharf.autoscale.target_rps"], *FLAGS]
    print("$ wharf " + " ".join(command) + f"  (in the background for this step; log {log_path})", flush=True)
    daemon = subprocess.Popen([sys.executable, "-m", "wharf", *command], env={**os.environ, **cluster.env()},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert daemon.stdout is not None
    log = open(log_path, "a")
    threading.Thread(target=_echo, args=(daemon.stdout, log), daemon=True).start()
    load = None
    try:
        print(f"$ wrk -t1 -c4 -d{int(args.seconds)}s -H 'Host: {vhost}' {url}", flush=True)
        load = subprocess.Popen(["wrk", "-t1", "-c4", f"-d{int(args.seconds)}s", "-H", f"Host: {vhost}", url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _app(marathon)["instances"] >= high, args.seconds, f"{APP_ID} to reach {high}")
        _show_answers(url, vhost, _app(marathon)["instances"], args.seconds)
        print("demo-autoscale: under load, status says:", flush=True)
        subprocess.run([sys.executable, "-m", "wharf", "autoscale", "status", "--marathon", marathon,
                        "--haproxy", stats_base, "--window", "2"], check=False)
        print("demo-autoscale: stopping the load", flush=True)
        load.terminate()
        load.wait(10)
        _wait(lambda: _app(marathon)["instances"] <= low, args.seconds, f"{APP_ID} to come back down to {low}")
        print(f"demo-autoscale: {APP_ID} back to {_app(marathon)['instances']} after the down window", flush=True)
        _wait(lambda: _app(marathon)["tasksRunning"] == low, args.seconds, f"{APP_ID} to run {low} tasks")
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
