"""The renderer at 1,000 and 5,000 services x 3 instances with a vhost each, beside marathon-lb on the
same generated apps in the same run: a full pass in process, the cost of one change (a health flip, a
new service) kept incrementally, a whole `wharf render once` process against a real Consul agent next
to `marathon_lb.py --dry`, the blocking queries the daemon holds open for 10 vs 1,000 services, and
one change -> HAProxy serving it through `wharf render run` at 1,000 and 5,000 services over 100
nodes and 1,000 on one node (`bench/render_changes.py`).

marathon-lb runs unmodified from ../shared/anchors/marathon-lb in a virtualenv of its own
(`bench/mlb_side.py`); it regenerates its whole config on every change, so its cost per change is its
regeneration (list + get_apps + config), measured here.

In process, the timed part of a pass is what the daemon does with Consul's answers once fetched:
`json.loads` of the raw bytes (one answer per node, and the health state), the snapshot, the safety
check, the routes and the Jinja render of the built-in HAProxy template, and the gen-0 collection
the pass leaves. Not timed: the HTTP fetch, imports, compiling the template. Each size runs in a
fresh Python process: its first pass is cold (every label and route cache empty), the passes after
it are warm (median and min-max).

    python bench/render_scale.py [--sizes 1000,5000] [--warm 10] [--skip-consul] [--quick]
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mlb_side  # noqa: E402
import render_changes  # noqa: E402

from consul_templates import render, safe  # noqa: E402
from consul_templates.catalog import Catalog  # noqa: E402
from consul_templates.incremental import Incremental  # noqa: E402
from consul_templates.snapshot import Snapshot, paused_gc  # noqa: E402
from devcluster.cluster import running  # noqa: E402
from devcluster.consul import Consul  # noqa: E402
from devcluster.process import claim_ports, free_port  # noqa: E402

CHANGES = 30  # health flips and new services timed per size


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


def answers(services: int) -> tuple[list[bytes], bytes]:
    """The catalog as Consul 1.8 sends it: one compact JSON answer per node (`/v1/catalog/node/<n>`),
    and the health state (`/v1/health/state/any`), as raw bytes."""
    nodes, checks = catalog(services)
    return [json.dumps(node, separators=(",", ":")).encode() for node in nodes], \
        json.dumps(checks, separators=(",", ":")).encode()


def one_pass(node_bytes: list[bytes], checks_bytes: bytes, template: render.Template,
             settings: render.RenderSettings) -> tuple[dict[str, float], Snapshot, str]:
    """One pass as the daemon runs it after its fetch: parse, snapshot, safety check, routes, Jinja.

    Timed: all of that (garbage collector paused, as in the daemon's pass) and the gen-0 collection
    the pass leaves for its next allocation. CPU time, as the machine is shared; wall time beside it."""
    w0, t0 = time.perf_counter(), time.process_time()
    with paused_gc():
        nodes = [json.loads(raw) for raw in node_bytes]
        checks = json.loads(checks_bytes)
        t1 = time.process_time()
        snap, _ = safe.clean(Snapshot.from_catalog(nodes, checks))
        t2 = time.process_time()
        text = render.render(template, snap, settings).text
    gc.collect(0)
    t3 = time.process_time()
    times = {"cpu": t3 - t0, "wall": time.perf_counter() - w0, "parse": t1 - t0, "snapshot": t2 - t1,
             "render": t3 - t2}
    return {k: v * 1000 for k, v in times.items()}, snap, text


def passes(services: int, warm: int) -> dict[str, Any]:
    """1 + `warm` passes in this process: the first is cold only if this process is fresh."""
    node_bytes, checks_bytes = answers(services)
    template = render.load_template("haproxy")  # compiled once, as the daemon does at start-up
    settings = render.RenderSettings(http_port=18080)
    runs: list[dict[str, float]] = []
    snap: Snapshot | None = None
    for _ in range(1 + warm):
        # the last pass's snapshot stays held during the next one, as in the daemon
        figures, snap, text = one_pass(node_bytes, checks_bytes, template, settings)
        runs.append(figures)
    return {"runs": runs, "lines": text.count("\n"), "changes": changes(node_bytes, checks_bytes, template, settings)}


def changes(node_bytes: list[bytes], checks_bytes: bytes, template: render.Template,
            settings: render.RenderSettings) -> dict[str, list[float]]:
    """CPU ms of one change kept incrementally, as the daemon's thread does it once Consul's answer is
    in: parse the answer, update the catalog, check the changed service, redo its routes, slots and
    blocks, put the file's text together. A health flip: the filtered checks answer now holds one
    failing check (flipped back after). A new service: one node's answer with one more registration.
    Not timed: the HTTP answer, the Runtime API command or the write, validation and reload."""
    catalog = Catalog.read([json.loads(raw) for raw in node_bytes], json.loads(checks_bytes))
    engine = Incremental(template, settings)
    engine.update({name: safe.clean_service(catalog.service(name))[0] for name in catalog.names})
    node = json.loads(node_bytes[0])
    flips, news = [], []
    for k in range(CHANGES):
        sid = sorted(node["Services"])[(k * 37) % len(node["Services"])]
        failing = json.dumps([{"Node": node["Node"]["Node"], "CheckID": f"service:{sid}", "ServiceID": sid,
                               "Status": "critical"}]).encode()
        for answer in (failing, b"[]"):
            t0 = time.process_time()
            changed = catalog.set_checks(json.loads(answer))
            update = engine.update({n: safe.clean_service(catalog.service(n))[0] for n in changed})
            flips.append((time.process_time() - t0) * 1000)
            assert not update.structural and update.moved
        sid = f"new-{k}"
        node["Services"][sid] = {**node["Services"][sorted(node["Services"])[0]], "ID": sid, "Service": f"new-app{k}",
                                 "Meta": {**meta(90000 + k, 0)}}
        raw = json.dumps(node, separators=(",", ":")).encode()
        t0 = time.process_time()
        changed = catalog.set_node(node["Node"]["Node"], json.loads(raw))
        update = engine.update({n: safe.clean_service(catalog.service(n))[0] for n in changed})
        news.append((time.process_time() - t0) * 1000)
        assert update.structural
    return {"flip": flips, "new": news}


def in_fresh_process(services: int, warm: int) -> dict[str, Any]:
    """`passes` in a new Python process, so its first pass finds every label and route cache empty."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", str(services), "--warm", str(warm)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"render pass in a fresh process failed: {result.stderr.strip()[-500:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


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


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def in_process_table(sizes: list[int], warm: int, mlb: dict[int, dict[str, Any]]) -> None:
    print("A full pass of the built-in HAProxy template, in process. Timed: json.loads of Consul's answers "
          "(raw bytes) -> catalog -> safety check -> routes -> Jinja, and the pass's gen-0 collection; "
          "not timed: the HTTP fetch, imports, compiling the template.")
    print(f"cold: the first pass in a fresh process; warm: the {warm} passes after it in that process, median "
          "(min-max). CPU ms, as the machine is shared; wall ms beside it.")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; the machine's pace now: "
          f"{pace():.0f} ms for a million-step Python loop (the figures below scale with it)")
    print(f"{'services':>9} {'instances':>9} {'cold cpu':>9} {'cold wall':>9} {'warm cpu':>22} {'warm wall':>9} "
          f"{'parse':>6} {'snap+safe':>9} {'routes+jinja':>12} {'lines':>7}")
    results = {}
    for n in sizes:
        r = results[n] = in_fresh_process(n, warm)
        cold, runs = r["runs"][0], r["runs"][1:]
        med = {k: statistics.median(run[k] for run in runs) for k in cold}
        print(f"{n:>9} {3 * n:>9} {cold['cpu']:>9.1f} {cold['wall']:>9.1f} {spread([x['cpu'] for x in runs]):>22} "
              f"{med['wall']:>9.1f} {med['parse']:>6.1f} {med['snapshot']:>9.1f} {med['render']:>12.1f} "
              f"{r['lines']:>7}")
    print(f"\nOne change, kept incrementally (CPU ms over {2 * CHANGES} health flips and {CHANGES} new services, "
          "median / p99): parse the answer that changed, catalog, safety check, routes, slots, the touched "
          "blocks, the file's text. Not timed: HTTP, the Runtime API command, the write, haproxy -c, reload. "
          "3 nodes here, so a new service parses a node's answer holding a third of the catalog.")
    print("marathon-lb has no such path: every change regenerates its whole config (list + get_apps + config, "
          "measured below, wall ms, warm median of 3 after a cold pass)")
    print(f"{'services':>9} {'wharf flip':>14} {'wharf new svc':>14} {'mlb cold':>9} {'mlb warm':>9} "
          f"{'mlb/flip':>9} {'mlb/new':>8}")
    for n in sizes:
        flips, news = results[n]["changes"]["flip"], results[n]["changes"]["new"]
        flip, new = statistics.median(flips), statistics.median(news)
        row = f"{n:>9} {f'{flip:.2f} / {p99(flips):.2f}':>14} {f'{new:.1f} / {p99(news):.1f}':>14}"
        if n in mlb:
            cold, warm_ms = mlb[n]["cold"]["total"], statistics.median(w["total"] for w in mlb[n]["warm"])
            row += f" {cold:>9.0f} {warm_ms:>9.0f} {warm_ms / flip:>8.0f}x {warm_ms / new:>7.1f}x"
        print(row)


def marathon_lb(sizes: list[int]) -> dict[int, dict[str, Any]]:
    """marathon-lb's regeneration and `--dry` process at each size, or nothing (with the reason)."""
    why = mlb_side.available()
    if why is not None:
        print(f"marathon-lb: not measured in this run: {why}")
        return {}
    mlb_side.ensure_venv()
    found = {}
    for n in sizes:
        found[n] = mlb_side.regeneration(n, warm=3)
        found[n]["dry"] = mlb_side.dry_process(n, repeats=3)
    return found


def consul_tables(sizes: list[int], small_watch: int, big_watch: int, mlb: dict[int, dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "plain.cfg.j2").write_text(render.BUILTIN["haproxy"].read_text())
        with running(Consul(tmp / "consul", claim_ports({f: None for f in Consul.port_flags}))) as agent:
            addr = agent.addr  # type: ignore[attr-defined]
            print("\n`wharf render once --no-reload` as a whole process against a real Consul 1.8.7 agent, wall s."
                  " Each run is cold (a fresh process); timed: interpreter start, imports, reading the catalog "
                  "over HTTP, parse, render, write (and `haproxy -c` where said)")
            print("beside it, `marathon_lb.py --dry` against a fake Marathon serving the same apps, median of 3")
            print(f"{'services':>9} {'no validation, median (min-max) of 3':>38} {'with haproxy -c, 1 run':>23} "
                  f"{'mlb --dry':>10} {'mlb/wharf':>10}")
            registered = 0
            for n in sizes:
                register_all_from(addr, registered, n)
                registered = n
                plain = [once_process(addr, tmp / "out.cfg", False) for _ in range(3)]
                checked = once_process(addr, tmp / "out.cfg", True)
                figure = f"{statistics.median(plain):.2f} ({min(plain):.2f}-{max(plain):.2f})"
                dry = ""
                if n in mlb:
                    mlb_dry = statistics.median(mlb[n]["dry"])
                    dry = f"{mlb_dry:>10.2f} {mlb_dry / statistics.median(plain):>9.1f}x"
                print(f"{n:>9} {figure:>38} {checked:>23.2f} {dry}")
        with running(Consul(tmp / "consul2", claim_ports({f: None for f in Consul.port_flags}))) as agent:
            addr = agent.addr  # type: ignore[attr-defined]
            print("\nBlocking queries the daemon holds open against Consul")
            register_all_from(addr, 0, small_watch)
            few = blocking_queries(addr, tmp)
            register_all_from(addr, small_watch, big_watch)
            many = blocking_queries(addr, tmp)
            print(f"   {small_watch:,} services: {few:.0f}   {big_watch:,} services: {many:.0f}   (the node list, the "
                  "checks, and one per node: 3 nodes of apps and the agent's own; consul-template's design "
                  "holds one per watched service)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--warm", type=int, default=10, help="warm passes after the cold one (default 10)")
    parser.add_argument("--skip-consul", action="store_true")
    parser.add_argument("--layouts", default="1000x100,5000x100,1000x1",
                        help="change -> HAProxy serving, SERVICESxNODES (bench/render_changes.py)")
    parser.add_argument("--quick", action="store_true", help="a quick check: sizes 100,500, 3 warm passes, "
                        "blocking queries for 10 vs 100 services")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)  # one size, in a fresh process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(passes(args.child, args.warm)))
        return 0
    sizes = [100, 500] if args.quick else [int(s) for s in args.sizes.split(",")]
    warm = 3 if args.quick else args.warm
    mlb = marathon_lb(sizes)
    in_process_table(sizes, max(1, warm), mlb)
    if not args.skip_consul:
        consul_tables(sizes, 10, 100 if args.quick else 1000, mlb)
        print()
        render_changes.table("200x10" if args.quick else args.layouts, 5 if args.quick else 20, 2 if args.quick else 5)
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
