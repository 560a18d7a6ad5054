"""App creation throughput of the Marathon stand-in, running on the Mesos stand-in.

Starts the Mesos stand-in (its agents sized so that every instance fits) and the Marathon
stand-in as its framework, then POSTs N command-only apps of one instance (``sleep 3600``,
cpus 0.01, mem 8) one after another and reports apps created per second, and the time from the
first POST until every instance is TASK_RUNNING. Deletes the apps and stops both stand-ins.

    python bench/marathon_apps.py [--apps 100] [--agents 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.marathon.standin import MarathonStandin  # noqa: E402
from devcluster.mesos import MesosStandin  # noqa: E402


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> tuple[int, object]:
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--agents", type=int, default=3)
    args = parser.parse_args(argv)
    per_agent_mem = max(512.0, 8 * args.apps / args.agents * 2)
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as state:
        mesos = MesosStandin(state_dir=Path(state), agents=args.agents, agent_cpus=4, agent_mem=per_agent_mem,
                             heartbeat_interval=5).start()
        marathon = MarathonStandin(f"127.0.0.1:{mesos.port}").start()
        conn = http.client.HTTPConnection("127.0.0.1", marathon.port, timeout=30)
        try:
            started = time.perf_counter()
            for n in range(args.apps):
                status, body = _call(conn, "POST", "/v2/apps", {"id": f"/bench/app-{n}", "cmd": "sleep 3600",
                                                                "cpus": 0.01, "mem": 8, "instances": 1})
                if status != 201:
                    raise SystemExit(f"POST answered {status}: {body}")
            created = time.perf_counter() - started
            deadline = time.monotonic() + 120
            while True:
                _, tasks = _call(conn, "GET", "/v2/tasks?status=running")
                assert isinstance(tasks, dict)
                if len(tasks["tasks"]) >= args.apps:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(tasks['tasks'])} of {args.apps} running after 120 s")
                time.sleep(0.05)
            all_running = time.perf_counter() - started
            print(f"created {args.apps} apps in {created:.2f} s: {args.apps / created:.0f} apps/s")
            print(f"all {args.apps} instances TASK_RUNNING {all_running:.2f} s after the first POST")
            for n in range(args.apps):
                _call(conn, "DELETE", f"/v2/apps/bench/app-{n}?force=true")
        finally:
            conn.close()
            marathon.stop()
            mesos.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
