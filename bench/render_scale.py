"""Full render time for 1,000 and 5,000 services x 3 instances with a vhost each, in process and as a
whole `wharf render once` process against a real Consul agent; and the blocking queries the daemon
holds open for 10 vs 1,000 services.

    python bench/render_scale.py [--sizes 1000,5000] [--skip-consul]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consul_templates import render, safe  # noqa: E402
from consul_templates.snapshot import Snapshot, paused_gc  # noqa: E402
from devcluster.cluster import running  # noqa: E402
from devcluster.consul import Consul  # noqa: E402
from devcluster.process import claim_ports, free_port  # noqa: E402

# marathon-lb on this kind of machine, same generated apps (from the issue)
MLB_DAEMON = {1000: 0.41, 5000: 2.9}
MLB_DRY = {1000: 2.1, 5000: 13.8}
GOAL_MS = {1000: 30, 5000: 150}


def meta(s: int, i: int) -> dict[str, str]:
    """The Meta the registrator writes for instance `i` of app `s` (DESIGN.md's contract)."""
    return {"HAPROXY_0_VHOST": f"app{s}.example.com", "HAPROXY_GROUP": "external",
            "container_id": f"{s:032x}{i:032x}", "marathon_app_id": f"/team/app{s}",
            "mesos_task_id": f"team_app{s}.{s:08x}-{i:04x}-11f0-8000-0242ac110002", "port_index": "0",
            "service_port": str(10000 + s), "wharf_digest": f"{s * 3 + i:016x}", "wharf_owner": f"agent{i}"}


def catalog(services: int) -> tuple[list[dict], list[dict]]:
    """Consul's JSON for `services` Marathon apps x 3 instances on 3 nodes, as the registrator writes."""
    nodes = {f"agent{n}": {"Node": {"Node": f"agent{n}", "Address": f"10.0.0.{n + 1}"}, "Services": {}}
             for n in range(3)}
    checks = []
    for s in range(services):
        for i in range(3):
            node = f"agent{i}"
            sid = f"agent{i}:mesos-{s:08x}-{i:04x}:{31000 + s % 900}"
            nodes[node]["Services"][sid] = {
                "ID": sid, "Service": f"team-app{s}", "Tags": [], "Address": f"10.0.0.{i + 1}",
                "Meta": meta(s, i), "Port": 31000 + s % 900, "EnableTagOverride": False,
                "CreateIndex": 100 + 3 * s + i, "ModifyIndex": 100 + 3 * s + i}
            checks.append({"Node": node, "CheckID": f"service:{sid}", "Name": f"Service 'team-app{s}' check",
                           "Status": "passing", "ServiceID": sid, "ServiceName": f"team-app{s}"})
    return list(nodes.values()), checks


def pace() -> float:
    """CPU ms for a fixed pure-Python loop, best of 5: shared machines change speed from minute to minute."""
    best = float("inf")
    for _ in range(5):
        t0, total = time.process_time(), 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.process_time() - t0)
    return best * 1000


def answers(services: int) -> tuple[list[str], str]:
    """The catalog as Consul sends it: one JSON answer per node, and the health state."""
    nodes, checks = catalog(services)
    return [json.dumps(node) for node in nodes], json.dumps(checks)


def in_process(services: int, runs: int = 5) -> dict[str, float]:
    node_texts, checks_text = answers(services)
    template = render.load_template("haproxy")
    settings = render.Settings(http_port=18080)
    times, walls, parts = [], [], []
    for _ in range(runs):
        # parsed afresh for each pass, one answer at a time, as the daemon parses what it fetched (with
        # the last pass's snapshot still held, as there); the parse and its collections are not counted
        nodes, checks = [json.loads(text) for text in node_texts], json.loads(checks_text)
        w0, t0 = time.perf_counter(), time.process_time()  # CPU time: the machine is shared
        with paused_gc():  # as the daemon runs a pass
            snap, _ = safe.clean(Snapshot.from_catalog(nodes, checks))
            t1 = time.process_time()
            text = render.render(template, snap, settings).text
        gc.collect(0)  # the collection the pass leaves for its next allocation, counted here
        t2 = time.process_time()
        times.append(t2 - t0)
        walls.append(time.perf_counter() - w0)
        parts.append((t1 - t0, t2 - t1))
    best = min(range(runs), key=lambda k: times[k])
    return {"total_ms": min(times) * 1000, "median_ms": statistics.median(times) * 1000,
            "wall_ms": statistics.median(walls) * 1000, "snapshot_ms": parts[best][0] * 1000,
            "template_ms": parts[best][1] * 1000, "lines": text.count("\n")}


def once_process(addr: str, dest: Path, validate: bool) -> float:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "CONSUL_"))},
           "CONSUL_HTTP_ADDR": addr}
    dest.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "wharf", "render", "once", "--template", "haproxy", "--dest", str(dest),
            "--no-reload", "--json", "--http-port", "18080"]
    if not validate:
        argv[argv.index("haproxy")] = str(dest.parent / "plain.cfg.j2")  # same template, not validated
    t0 = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"wharf render once failed: {result.stderr.strip()[-300:]}")
    return elapsed


def blocking_queries(addr: str, tmp: Path) -> float:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "CONSUL_"))},
           "CONSUL_HTTP_ADDR": addr}
    proc = subprocess.Popen([sys.executable, "-m", "wharf", "render", "run", "--template",
                             str(tmp / "plain.cfg.j2"), "--dest", str(tmp / "watch.out"),
                             "--metrics-port", str(port), "--http-port", "18080"], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        value = 0.0
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    for line in resp.read().decode().splitlines():
                        if line.startswith("wharf_render_blocking_queries "):
                            value = float(line.split()[1])
                if value and (tmp / "watch.out").exists():
                    time.sleep(1.0)  # let both queries park
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                        for line in resp.read().decode().splitlines():
                            if line.startswith("wharf_render_blocking_queries "):
                                return float(line.split()[1])
            except OSError:
                pass
            time.sleep(0.1)
        return value
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--skip-consul", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("Full render of the built-in HAProxy template (Consul JSON -> snapshot -> safe -> Jinja), in process;")
    print(f"CPU ms (best and median of 5), wall ms (median); load average now {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores; the machine's pace now: {pace():.0f} ms for a million-step Python loop "
          "(the figures below scale with it)")
    print(f"{'services':>9} {'instances':>9} {'cpu best':>9} {'cpu med':>8} {'wall':>7} {'goal':>5} {'snapshot':>9}"
          f" {'template':>9} {'lines':>7} {'marathon-lb daemon':>19}")
    for n in sizes:
        r = in_process(n)
        print(f"{n:>9} {3 * n:>9} {r['total_ms']:>9.1f} {r['median_ms']:>8.1f} {r['wall_ms']:>7.1f} "
              f"{GOAL_MS.get(n, '-'):>5} {r['snapshot_ms']:>9.1f} {r['template_ms']:>9.1f} {r['lines']:>7} "
              f"{MLB_DAEMON.get(n, float('nan')) * 1000:>17.0f}ms")
    if len(sizes) > 1:
        small, big = in_process(sizes[0], 3)["total_ms"], in_process(sizes[-1], 3)["total_ms"]
        print(f"growth: {big / small:.1f}x the time for {sizes[-1] / sizes[0]:.0f}x the services "
              f"(marathon-lb: {MLB_DAEMON[5000] / MLB_DAEMON[1000]:.1f}x)")
    if args.skip_consul:
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "plain.cfg.j2").write_text(render.BUILTIN["haproxy"].read_text())
        with running(Consul(tmp / "consul", claim_ports({f: None for f in Consul.port_flags}))) as agent:
            addr = agent.addr  # type: ignore[attr-defined]
            print("\n`wharf render once --no-reload` as a whole process against a real Consul 1.8.7 agent")
            print(f"{'services':>9} {'no validation s':>16} {'with haproxy -c s':>18} {'marathon-lb --dry s':>20}"
                  f" {'speed-up':>9}")
            registered = 0
            for n in sizes:
                register_all_from(addr, registered, n)
                registered = n
                plain = min(once_process(addr, tmp / "out.cfg", False) for _ in range(3))
                checked = once_process(addr, tmp / "out.cfg", True)
                print(f"{n:>9} {plain:>16.2f} {checked:>18.2f} {MLB_DRY[n] if n in MLB_DRY else float('nan'):>20.1f}"
                      f" {MLB_DRY.get(n, float('nan')) / plain:>8.1f}x")
        with running(Consul(tmp / "consul2", claim_ports({f: None for f in Consul.port_flags}))) as agent:
            addr = agent.addr  # type: ignore[attr-defined]
            print("\nBlocking queries the daemon holds open against Consul")
            register_all_from(addr, 0, 10)
            ten = blocking_queries(addr, tmp)
            register_all_from(addr, 10, 1000)
            thousand = blocking_queries(addr, tmp)
            print(f"   10 services: {ten:.0f}   1,000 services: {thousand:.0f}   (goal: the same number; "
                  "consul-template holds one per watched service)")
    return 0


def register_all_from(addr: str, start: int, stop: int) -> None:
    import consul

    host, port = addr.split(":")
    client = consul.Consul(host=host, port=int(port))
    for s in range(start, stop):
        for i in range(3):
            client.catalog.register(
                f"agent{i}", f"10.0.0.{i + 1}",
                service={"ID": f"agent{i}:mesos-{s:08x}-{i:04x}:{31000 + s % 900}", "Service": f"team-app{s}",
                         "Address": f"10.0.0.{i + 1}", "Port": 31000 + s % 900, "Meta": meta(s, i)})


if __name__ == "__main__":
    raise SystemExit(main())
