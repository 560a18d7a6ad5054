"""The trace step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

`wharf trace /web` follows the demo's /web through every link (the config commit, Marathon, its
tasks, Consul, HAProxy, the autoscaler) and finds each holding. Then one link is broken on purpose:
the registrator is stopped and /web gets one more instance, which runs but is never registered in
Consul, and `wharf trace` names that link and what to check. The registrator is started again, the
instance is registered and routed, and the trace holds again.

    python -m devcluster.demos.trace
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from devcluster.cluster import Cluster
from devcluster.demos.registrator import run_daemon
from devcluster.process import stop_pid_file
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


def main() -> int:
    state_dir = Path(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    cluster = Cluster(state_dir)
    if not cluster.running():
        raise SystemExit("demo-trace: no dev cluster running (run make demo)")
    env = {**os.environ, **cluster.env()}
    marathon = env["MARATHON_URL"].split(",")[0]
    _until(env, None, "every link of /web to hold")
    print("# breaking one link on purpose: the registrator stops, and /web gets one more instance", flush=True)
    stop_pid_file(state_dir / "registrator.pid", timeout=10)
    instances = int(requests.get(f"{marathon}/v2/apps{APP_ID}", timeout=10).json()["app"]["instances"])
    requests.patch(f"{marathon}/v2/apps{APP_ID}", json={"instances": instances + 1}, timeout=10).raise_for_status()
    _until(env, "consul", "wharf trace to name the consul link")
    print("# the registrator again", flush=True)
    run_daemon(state_dir, env)
    _until(env, None, "every link of /web to hold again")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
