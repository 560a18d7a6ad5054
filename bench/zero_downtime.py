"""Failed requests through changes, under steady load through HAProxy: wharf, and marathon-lb beside it.

A dev cluster of its own (`wharf dev up` in a temporary state directory: ZooKeeper, the Mesos and
Marathon stand-ins, a Docker engine, Consul), and beside it the chain a user runs (`devcluster.lab`):
an HAProxy, `wharf registrator run` and `wharf render run`. Beside that, when its source is there
(`bench/mlb_side.py`), the real, unmodified marathon-lb with its own HAProxy, as its container runs
them (`bench/mlb_live.py`: `--sse --health-check --group external`, HAProxy master-worker reloaded
by SIGHUP after saving the servers' state); the Marathon stand-in reports TASK_KILLING on its event
stream, as Marathon does with its `task_killing` feature, and marathon-lb reads it. Without the
source, wharf runs alone and the bench says why.

For each change and each kind of app, a fresh Marathon app of busybox httpd (`HAPROXY_GROUP=external`)
is deployed and routed by its vhost in both HAProxies, then two loads of 200 requests a second each,
one through wharf's HAProxy and one through marathon-lb's, same Host header, each over 8 keep-alive
connections (`devcluster.load`, every request's outcome counted: status code, connection error,
timeout), run 3 s before the change, through it, and 3 s after it has settled in both. Two kinds of
app: one that keeps serving through its 3 s kill grace period (httpd as PID 1 ignores SIGTERM) and
one that exits at once on SIGTERM. Changes:

- `scale 10 -> 1 (wharf apps scale)`: drain before kill (`wharf.drain`, watching wharf's HAProxy);
- `scale 10 -> 1 (Marathon)`: the count lowered in Marathon, which picks and kills (wharf does not
  decide these kills: the registrator's drain on Docker's `kill` and HAProxy's retries are all);
- `scale 10 -> 1 (autoscaler)`: the real `wharf autoscale run` daemon, started on wharf's HAProxy
  (its admin socket: stats and the drain's view) with a decision every second, decides the
  scale-down itself from the app's labels (`wharf.autoscale.target_rps` twice the bench's rate, so
  one instance holds the load it reads; `min` 1; `scale_down_stabilization` 0) and drains before it
  kills (`--drain-timeout 10`); the time shown includes its decision;
- `blue/green deploy`: `wharf apps deploy` of a `strategy: bluegreen` spec, v1 (blue) before the
  load, v2 (green) under it: green up and in rotation, then blue drained and deleted (3 instances);
- `blue/green, new version never healthy`: the same with a v2 that never listens, removed after its
  10 s `--timeout` while blue serves on;
- `rolling restart (Marathon)`: `POST /v2/apps/{id}/restart`, Marathon replacing every instance;
- `scale 1 -> 10, 5 s start`: new instances that listen 5 s after they start (health checks gate them);
- `renderer restart`: `wharf render run` stopped (SIGTERM) and started again, and marathon-lb's
  daemon (`marathon_lb.py`) the same way;
- `reload storm`: five other apps deployed and removed, each a structural change (a reload of both).

Every kill is seen by both HAProxies: wharf's drains act on wharf's chain only (Consul maintenance),
marathon-lb learns of the kill from Marathon's events (its blue/green merge of a deployment group
serves both colours while both run). Everything listens on 127.0.0.0/8. The table is what this run measured.

    python bench/zero_downtime.py [--only SUBSTRING] [--rate 200] [--no-mlb]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlb_live import GROUP, MlbLab, live_available  # noqa: E402

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.lab import Lab, Systems, bluegreen_spec, run, web_app  # noqa: E402
from devcluster.load import Load  # noqa: E402
from devcluster.process import spawn, stop  # noqa: E402
from wharf.contracts.marathon_lb import app_name  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

SETTLE = 3.0
AUTOSCALE_INTERVAL = 1.0
Change = Callable[[str, str], int | tuple[str, int]]


@dataclass(frozen=True)
class Scenario:
    """A change, the app's instances at the start, `web_app` options and more labels for the app."""

    name: str
    instances: int
    change: Change
    options: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    bluegreen: bool | None = None  # a blue/green deploy (`Bench.bluegreen`) whose new version gets healthy or not


@dataclass
class Measured:
    """Outcomes through wharf's HAProxy and marathon-lb's (None: not run), the change's time, and the
    reloads marathon-lb asked for meanwhile."""

    wharf: Counter[str]
    mlb: Counter[str] | None
    took: float
    reloads: int | None


def bench_app(app_id: str, vhost: str, instances: int, labels: dict[str, str] | None = None,
              **options: Any) -> dict[str, Any]:
    """`web_app` in marathon-lb's group (wharf reads the same label), with `labels` added."""
    app = web_app(app_id, vhost, instances, **options)
    app["labels"].update({"HAPROXY_GROUP": GROUP, **(labels or {})})
    return app


class Bench:
    """Deploys, loads and measures on wharf's lab and, when given, marathon-lb's beside it."""

    def __init__(self, lab: Lab, marathon: str, rate: float, mlb: MlbLab | None = None) -> None:
        self.lab, self.marathon, self.rate, self.mlb = lab, marathon, rate, mlb

    def routed(self, prefix: str, instances: int) -> bool:
        """Whether every HAProxy in the bench routes exactly `instances` servers of the app."""
        return self.lab.serving(prefix) == instances and (self.mlb is None or self.mlb.serving(prefix) == instances)

    def deploy(self, app: dict[str, Any]) -> str:
        assert requests.post(f"{self.marathon}/v2/apps", json=app, timeout=10).status_code == 201
        prefix = app_name(app["id"]) + "_"
        wait_until(lambda: self.routed(prefix, app["instances"]), 120, 0.1, "the app routed")
        return prefix

    def remove(self, app_id: str) -> None:
        requests.delete(f"{self.marathon}/v2/apps{app_id}", params={"force": "true"}, timeout=10)

    def app(self, app_id: str) -> dict[str, Any]:
        return dict(requests.get(f"{self.marathon}/v2/apps{app_id}", timeout=10).json()["app"])

    def instances(self, app_id: str) -> int:
        return int(self.app(app_id)["instances"])

    def settled(self, app_id: str, prefix: str, instances: int) -> bool:
        app = self.app(app_id)
        healthy = app.get("tasksHealthy", 0) if app.get("healthChecks") else app.get("tasksRunning", 0)
        return (not app.get("deployments") and healthy == instances == app.get("tasksRunning")
                and self.routed(prefix, instances))

    def measure(self, app: dict[str, Any], change: Change) -> Measured:
        """Deploy, load, change, wait for the end state, load; the app removed after."""
        prefix = self.deploy(app)
        try:
            return self.loaded(app["labels"]["HAPROXY_0_VHOST"], app["id"], prefix, change)
        finally:
            self.remove(app["id"])

    def loaded(self, host: str, app_id: str, prefix: str, change: Change) -> Measured:
        """Load through every HAProxy, make the change (it returns the instance count, or the app to
        settle on and its count), wait for that end state, load again."""
        ports = [self.lab.http_port] + ([self.mlb.http_port] if self.mlb else [])
        loads = [Load(port, host, rate=self.rate, connections=8) for port in ports]
        reloads = self.mlb.reloads() if self.mlb else 0
        for load in loads:
            load.start()
        try:
            time.sleep(SETTLE)  # the steady load before the change, by design
            started = time.monotonic()
            final = change(app_id, prefix)
            settle_on, count = final if isinstance(final, tuple) else (app_id, final)
            wait_until(lambda: self.settled(settle_on, prefix, count), 180, 0.2, "the change to settle")
            took = time.monotonic() - started
            time.sleep(SETTLE)
        finally:
            for load in loads:
                load.stop()
        return Measured(loads[0].outcomes, loads[1].outcomes if self.mlb else None, took,
                        self.mlb.reloads() - reloads if self.mlb else None)

    def bluegreen(self, exits: bool, healthy: bool) -> Measured:
        """`wharf apps deploy` of a `strategy: bluegreen` app (v1, blue), then, loaded, of v2 (green),
        or of a v2 that never listens (removed after 10 s; blue serves on)."""
        folder = f"zd-{uuid.uuid4().hex[:6]}"
        group, vhost, port = f"/{folder}/web", f"{folder}.test", random.randrange(11000, 19000, 2)
        spec = self.lab.directory / "repos" / folder / "apps" / folder / "web.yaml"
        spec.parent.mkdir(parents=True)
        env = {**self.lab.env(), "WHARF_HAPROXY_SOCKET": str(self.lab.haproxy.admin_socket)}

        def deploy(version: str, listens: bool = True) -> int:
            spec.write_text(yaml.safe_dump(bluegreen_spec(version, vhost, port, exits_at_once=exits, listens=listens,
                                                          GROUP=GROUP)))
            flags = ["--timeout", "120" if listens else "10", "--drain-timeout", "10"]
            return run(["apps", "deploy", str(spec.parents[2]), "--json", *flags], env).returncode

        def change(app_id: str, prefix: str) -> tuple[str, int]:
            code = deploy("v2", listens=healthy)
            if code != (0 if healthy else 1):
                raise SystemExit(f"wharf apps deploy of v2 exited {code}")
            return (f"{group}-green" if healthy else f"{group}-blue"), 3

        if deploy("v1") != 0:
            raise SystemExit("wharf apps deploy of v1 failed")
        prefix = app_name(group) + "_"
        wait_until(lambda: self.routed(prefix, 3), 120, 0.1, "blue routed")
        try:
            return self.loaded(vhost, f"{group}-blue", prefix, change)
        finally:
            for colour in ("blue", "green"):
                self.remove(f"{group}-{colour}")


def wharf_scale(bench: Bench, n: int) -> Change:
    """`wharf apps scale` to `n`, draining on wharf's HAProxy."""
    def change(app_id: str, prefix: str) -> int:
        env = {**bench.lab.env(), "WHARF_HAPROXY_SOCKET": str(bench.lab.haproxy.admin_socket)}
        result = run(["apps", "scale", app_id, str(n), "--drain-timeout", "10", "--json"], env)
        if result.returncode != 0:
            raise SystemExit(f"wharf apps scale: {result.stderr.strip()}")
        return n
    return change


def marathon_scale(bench: Bench, n: int) -> Change:
    """The count set to `n` in Marathon, which picks and kills."""
    def change(app_id: str, prefix: str) -> int:
        requests.put(f"{bench.marathon}/v2/apps{app_id}", json={"instances": n}, timeout=10).raise_for_status()
        return n
    return change


def autoscale_labels(rate: float) -> dict[str, str]:
    """An autoscaling policy under which one instance holds `rate` with room to spare (target twice
    the rate), deciding a scale-down as soon as the autoscaler's own checks allow."""
    return {"wharf.autoscale.target_rps": f"{2 * rate:g}", "wharf.autoscale.min": "1",
            "wharf.autoscale.scale_down_stabilization": "0"}


def autoscaler(bench: Bench) -> Change:
    """`wharf autoscale run` on wharf's HAProxy until it has scaled the app down to 1 (drain, then kill)."""
    def change(app_id: str, prefix: str) -> int:
        lab = bench.lab
        argv = [sys.executable, "-m", "wharf", "autoscale", "run", "--marathon", bench.marathon,
                "--haproxy", str(lab.haproxy.admin_socket), "--interval", f"{AUTOSCALE_INTERVAL:g}",
                "--drain-timeout", "10"]
        seen = len(lab.log("autoscaler"))
        proc = spawn(argv, lab.directory / "autoscaler.log", env=lab.env())

        def done() -> bool:  # its drain thread's last word: "drained and killed" or "scale-down failed"
            return not proc.alive() or any(w in lab.log("autoscaler")[seen:] for w in ("drained and", "failed"))
        try:
            wait_until(done, 180, 0.2, "the autoscaler's scale-down")
            said = lab.log("autoscaler")[seen:]
            if "drained and killed" not in said:
                raise SystemExit(f"wharf autoscale run did not drain and kill:\n{said[-2000:]}")
        finally:
            stop(proc)
        return 1
    return change


def restart(bench: Bench) -> Change:
    """Marathon's rolling restart of the app."""
    def change(app_id: str, prefix: str) -> int:
        requests.post(f"{bench.marathon}/v2/apps{app_id}/restart", timeout=10).raise_for_status()
        time.sleep(0.5)  # the deployment is listed by then
        return bench.instances(app_id)
    return change


def renderer_restart(bench: Bench) -> Change:
    """wharf's renderer and marathon-lb's daemon stopped and started again."""
    def change(app_id: str, prefix: str) -> int:
        bench.lab.stop_renderer()
        bench.lab.start_renderer()
        if bench.mlb:
            bench.mlb.stop_daemon()
            bench.mlb.start_daemon()
        return bench.instances(app_id)
    return change


def reload_storm(bench: Bench) -> Change:
    """Five other apps deployed (routed in both HAProxies), then removed."""
    def change(app_id: str, prefix: str) -> int:
        others = [bench_app(f"{app_id}-other{i}", f"other{i}-{uuid.uuid4().hex[:4]}.test", 1) for i in range(5)]
        for other in others:
            bench.deploy(other)
        for other in others:
            bench.remove(other["id"])
        return bench.instances(app_id)
    return change


def scenarios(bench: Bench) -> list[Scenario]:
    """Every change the bench measures, in order."""
    return [
        Scenario("scale 10 -> 1 (wharf apps scale)", 10, wharf_scale(bench, 1)),
        Scenario("scale 10 -> 1 (Marathon)", 10, marathon_scale(bench, 1)),
        Scenario("scale 10 -> 1 (autoscaler)", 10, autoscaler(bench), labels=autoscale_labels(bench.rate)),
        Scenario("rolling restart (Marathon)", 3, restart(bench), {"start_delay": 1}),
        Scenario("scale 1 -> 10, 5 s start", 1, marathon_scale(bench, 10), {"start_delay": 5}),
        Scenario("blue/green deploy", 3, lambda app_id, prefix: 3, bluegreen=True),
        Scenario("blue/green, v2 never healthy", 3, lambda app_id, prefix: 3, bluegreen=False),
        Scenario("renderer restart", 3, renderer_restart(bench)),
        Scenario("reload storm (5 apps in, 5 out)", 3, reload_storm(bench)),
    ]


def failed(outcomes: Counter[str] | None) -> str:
    """`3 x 503, 2 x connection error`, `0`, or `-` for a load not run."""
    if outcomes is None:
        return "-"
    bad = {k: v for k, v in outcomes.items() if k[:1] not in ("2", "3")}
    return ", ".join(f"{v} x {k}" for k, v in sorted(bad.items())) or "0"


def row(name: str, kind: str, m: Measured) -> str:
    """One line of the table."""
    sent = f"{sum(m.wharf.values())}/{sum(m.mlb.values()) if m.mlb is not None else '-'}"
    reloads = "-" if m.reloads is None else str(m.reloads)
    return (f"{name:34} {kind:20} {sent:>11} {failed(m.wharf):>24} {failed(m.mlb):>24} {reloads:>7} "
            f"{m.took:>9.1f} s")


def header(rate: float, mlb: MlbLab | None, why_not: str | None) -> list[str]:
    """What runs, and the table's column names."""
    who = ("and, the same rate at the same time, through marathon-lb's own HAProxy: the unmodified "
           f"marathon-lb (marathon_lb.py --sse --health-check --group {GROUP}, HAProxy master-worker, "
           "reloaded by SIGHUP)" if mlb else f"marathon-lb not run: {why_not}")
    return [
        f"{rate:g} requests/s over 8 keep-alive connections through wharf's HAProxy (registrator + renderer), "
        f"{who}; {SETTLE:g} s before and after each change; the Marathon stand-in",
        *([mlb.describe(), "requests: wharf/marathon-lb; mlb rel.: HAProxy reloads marathon-lb asked for during "
           "the row; renderer restart also restarts marathon_lb.py"] if mlb else []),
        f"{'change':34} {'app':20} {'requests':>11} {'wharf failed':>24} {'marathon-lb failed':>24} "
        f"{'mlb rel.':>7} {'change took':>11}",
    ]


def run_all(args: argparse.Namespace, tmp: Path, where: Systems, why_not: str | None) -> None:
    """wharf's lab and, unless `why_not`, marathon-lb's; every chosen change on both kinds of app."""
    with Lab(tmp, where) as lab, (MlbLab(tmp / "mlb", where.marathon_url) if why_not is None
                                  else nullcontext()) as mlb:
        bench = Bench(lab, where.marathon_url, args.rate, mlb)
        print("\n".join(header(args.rate, mlb, why_not)), flush=True)
        for scenario in scenarios(bench):
            if args.only not in scenario.name:
                continue
            for kind, exits in (("keeps serving (3 s)", False), ("exits at once", True)):
                if scenario.bluegreen is not None:
                    print(row(scenario.name, kind, bench.bluegreen(exits, scenario.bluegreen)), flush=True)
                    continue
                app_id = f"/zd-{uuid.uuid4().hex[:6]}/web"
                app = bench_app(app_id, f"{app_id.split('/')[1]}.test", scenario.instances, scenario.labels,
                                exits_at_once=exits, **scenario.options)
                print(row(scenario.name, kind, bench.measure(app, scenario.change)), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the changes whose name holds this")
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second, each load (default 200)")
    parser.add_argument("--no-mlb", action="store_true", help="wharf alone, without marathon-lb beside it")
    args = parser.parse_args()
    why_not = "--no-mlb given" if args.no_mlb else live_available()
    with tempfile.TemporaryDirectory(prefix="wharf-zd-") as tmp:
        cluster = Cluster(Path(tmp) / "cluster")
        cluster.up()
        try:
            env = cluster.env()
            where = Systems(env["CONSUL_HTTP_ADDR"], env["MARATHON_URL"].split(",")[0], env["DOCKER_HOST"])
            run_all(args, Path(tmp), where, why_not)
        finally:
            cluster.down(purge=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
