"""The trace step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

`wharf trace /web` follows the demo's /web through every link (the config commit, Marathon, its
tasks, Consul, HAProxy, the autoscaler) and finds each holding. Then one link is broken on purpose:
the registrator is stopped and /web gets one more instance, which runs but is never registered in
Consul, and `wharf trace` names that link and what to check. The registrator is started again, the
instance is registered and routed, and the trace holds again. `wharf ui` serves the same chain as a
live page from the start of the step until the demo ends (`--stop`); its address is printed last.

    python -m devcluster.demos.trace [--stop]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from devcluster.cluster import Cluster
from devcluster.demos.registrator import run_daemon
from devcluster.process import start_pid_file, stop_pid_file
from wharf.errors import TimedOut
from wharf.wait import wait_until

APP_ID, SECONDS = "/web", 90.0


def _trace(env: dict[str, str], show: bool = False) -> dict[str, object]:
    """`wharf trace /web --json` (and, with `show`, the same for people)."""
    if show:
        print(f"$ wharf trace {APP_ID}", flush=True)
        subprocess.run([sys.executable, "-m", "wharf", "trace", APP_ID], env=env, timeout=60)
    done = subprocess.run([sys.executable, "-m", "wharf", "trace", APP_ID, "--json"], env=env, text=True,
                          capture_output=True, timeout=60)
    if done.returncode not in (0, 1):
        raise SystemExit(f"demo-trace: wharf trace exited {done.returncode}: {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


def _until(env: dict[str, str], broken: str | None, what: str) -> None:
    try:
        wait_until(lambda: _trace(env)["broken"] == broken, SECONDS, 0.5, what)
    except TimedOut as exc:
        _trace(env, show=True)
        raise SystemExit(f"demo-trace: {exc.message}") from None
    _trace(env, show=True)


def start_view(state_dir: Path, env: dict[str, str]) -> str:
    """`wharf ui` in the background until `--stop`, its pid in the state dir; its address, once /web is on it."""
    log_path = state_dir / "ui.log"
    print(f"$ wharf ui --listen 127.0.0.1:0  (in the background until the demo ends; log {log_path})", flush=True)
    log_path.unlink(missing_ok=True)  # its address is read from it: no older run's
    start_pid_file(state_dir / "ui.pid", ["ui", "--listen", "127.0.0.1:0"], log_path, env)

    def listed() -> list[str]:
        return [a["app"] for a in requests.get(f"{address}api/view", timeout=5).json()["apps"]]

    try:
        found = wait_until(lambda: re.search(r"wharf ui: (http://\S+)", log_path.read_text()), 30, 0.1, "its address")
        address = found.group(1)
        wait_until(lambda: APP_ID in listed(), 30, 0.2, "/web on the page")
    except TimedOut as exc:
        raise SystemExit(f"demo-trace: wharf ui: {exc.message}; see {log_path}") from None
    return address


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the trace step of make demo")
    parser.add_argument("--stop", action="store_true", help="stop the background web view")
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    if args.stop:
        stop_pid_file(state_dir / "ui.pid", timeout=10)
        return 0
    cluster = Cluster(state_dir)
    if not cluster.running():
        raise SystemExit("demo-trace: no dev cluster running (run make demo)")
    env = {**os.environ, **cluster.env()}
    marathon = env["MARATHON_URL"].split(",")[0]
    address = start_view(state_dir, env)
    _until(env, None, "every link of /web to hold")
    print("# breaking one link on purpose: the registrator stops, and /web gets one more instance", flush=True)
    stop_pid_file(state_dir / "registrator.pid", timeout=10)
    instances = int(requests.get(f"{marathon}/v2/apps{APP_ID}", timeout=10).json()["app"]["instances"])
    requests.patch(f"{marathon}/v2/apps{APP_ID}", json={"instances": instances + 1}, timeout=10).raise_for_status()
    _until(env, "consul", "wharf trace to name the consul link")
    print("# the registrator again", flush=True)
    run_daemon(state_dir, env)
    _until(env, None, "every link of /web to hold again")
    print(f"# the web view of every app, live until the demo ends: {address}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
