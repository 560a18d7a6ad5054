"""`wharf apps`: render + validate + plan for 1,000 app specs against a Marathon holding 1,000 apps.

Starts the Mesos and Marathon stand-ins, creates 1,000 apps in Marathon (instances 0, so no task
runs: what is measured is wharf, not the cluster), and writes a config repository of 1,000 specs
using the shorthands (image, ports, health, lb, service, after), templated with per-environment
values; 900 match what Marathon runs, 100 differ in one field. Then, in a process of its own (the
stand-ins' threads stay out of it), R times: render and validate every spec, read Marathon's
apps, and compute the plan. The first round compiles every template (the specs carry a fresh
comment each run); later rounds find them in Jinja's bytecode cache, as a push whose specs did
not all change does. Also times `wharf apps plan --json` run as a command (interpreter start
included). Prints each part beside the goal.

    python bench/apps_plan.py [--apps 1000] [--rounds 5]
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
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.marathon.standin import MarathonStandin  # noqa: E402
from devcluster.mesos import MesosStandin  # noqa: E402
from marathon_apps.client import Marathon  # noqa: E402
from marathon_apps.plan import make_plan  # noqa: E402
from marathon_apps.repo import load_apps  # noqa: E402

GOAL = 2.0
SPEC = """image: {{{{ image }}}}
cmd: exec httpd -f -p $PORT0
instances: 0
cpus: {{{{ cpus }}}}
mem: {mem}
ports: [{{name: http}}]
health: {{http: /health, port: http, grace: 30, interval: 10}}
lb: {{group: external, vhost: app-{n}.{{{{ domain }}}}}}
service: {{name: app-{n}, tags: [{{{{ env }}}}]}}
{after}"""


def write_repo(root: Path, count: int, run: str = "") -> None:
    (root / "values").mkdir(parents=True)
    (root / "values" / "bench.yaml").write_text("image: wharf/busybox:latest\ncpus: 0.1\ndomain: bench.local\n")
    for n in range(count):
        group = f"g{n // 100}"
        after = f"after: [app-{n - 1}]\n" if n % 10 == 5 else ""
        path = root / "apps" / group / f"app-{n}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# bench run {run}\n" + SPEC.format(n=n, mem=32, after=after))


def worker(url: str, root: Path, rounds: int) -> int:
    """The measured part, printed as JSON: render + validate, read, plan, R times."""
    client = Marathon([url])
    out: dict[str, list] = {"render": [], "read": [], "plan": [], "total": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        apps = load_apps(root, "bench")
        t1 = time.perf_counter()
        running = client.apps()
        t2 = time.perf_counter()
        result = make_plan(apps, running, "wharf")
        t3 = time.perf_counter()
        for key, value in (("render", t1 - t0), ("read", t2 - t1), ("plan", t3 - t2), ("total", t3 - t0)):
            out[key].append(value)
    print(json.dumps({**out, "counts": result.counts()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker", nargs=2, metavar=("MARATHON_URL", "REPO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], Path(args.worker[1]), args.rounds)
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp:
        state = Path(tmp)
        root = state / "repo"
        write_repo(root, args.apps, uuid.uuid4().hex)
        mesos = MesosStandin(state_dir=state / "mesos", agents=1, heartbeat_interval=5).start()
        marathon = MarathonStandin(f"127.0.0.1:{mesos.port}").start()
        try:
            client = Marathon([marathon.url])
            apps = load_apps(root, "bench")
            live = []
            for i, app in enumerate(apps):  # what Marathon should run: 100 of them one field apart
                live.append(dict(app.definition, mem=64) if i % 10 == 0 else app.definition)
            for start in range(0, len(live), 250):
                client.request("PUT", "/v2/apps", live[start:start + 250])
            deadline = time.monotonic() + 120
            while client.deployments() or len(client.apps()) < args.apps:
                if time.monotonic() > deadline:
                    raise SystemExit("Marathon did not settle with the apps in 120 s")
                time.sleep(0.2)

            measured = subprocess.run([sys.executable, __file__, "--worker", marathon.url, str(root),
                                     "--rounds", str(args.rounds)], capture_output=True, text=True, check=True)
            timings = json.loads(measured.stdout)
            render, read, plan, total = (timings[k] for k in ("render", "read", "plan", "total"))
            counts = timings["counts"]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_"))}
            env["MARATHON_URL"] = marathon.url
            command = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-m", "wharf", "apps", "plan", str(root), "--env", "bench",
                                      "--json"], env=env, capture_output=True, text=True, check=True)
                command.append(time.perf_counter() - t0)
            assert json.loads(out.stdout)["summary"] == counts
        finally:
            marathon.stop()
            mesos.stop()

    def fig(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f} s, worst {max(xs):.2f} s"

    print(f"{args.apps} specs against a Marathon of {args.apps} apps, {args.rounds} rounds "
          f"(plan: {counts['update']} update, {counts['unchanged']} unchanged)")
    print(f"  render + validate:      first round {render[0]:.2f} s (templates compiled), later {fig(render[1:])}")
    print(f"  read Marathon's apps:   {fig(read)}")
    print(f"  plan:                   {fig(plan)}")
    print(f"  render + validate + plan, in process: first round {total[0]:.2f} s, later {fig(total[1:])}"
          f"   goal <= {GOAL:g} s")
    print(f"  `wharf apps plan --json` as a command: {fig(command)}   goal <= {GOAL:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
