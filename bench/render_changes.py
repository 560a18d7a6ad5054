"""One change -> HAProxy serving it, through a real Consul agent, `wharf render run` and a real HAProxy,
at scale: N services x 3 instances spread over many nodes, registered through Consul's catalog API
with a check each, as a cluster's agents hold them (the dev cluster's single agent holds everything
on one node, which no real cluster does).

Timed from the catalog call that makes the change until HAProxy's Runtime API (`show servers state
<backend>`) shows it served, polled every millisecond:
- a health flip (membership): one instance's check goes critical (its slot leaves rotation), then
  back to passing (it serves again);
- a new service (structural): three instances of a new app with its own vhost, until its backend
  exists with its servers serving (one validated reload);
- a flip while a structural pass is validating: a new service is registered, and the flip is sent
  once the pass's temporary file (`.haproxy.cfg.*.tmp`, under `haproxy -c`) appears.
The renderer's CPU per change is its process's CPU time (`/proc/<pid>/stat`, 10 ms ticks) over all the
changes of a kind, divided by their number. Every address is on 127.0.0.0/8: nothing is sent anywhere
else, and no request goes through HAProxy (only its Runtime API is read).

    python bench/render_changes.py [--layouts 1000x100,5000x100,1000x1] [--flips 40] [--news 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.cluster import running  # noqa: E402
from devcluster.consul import Consul  # noqa: E402
from devcluster.haproxy import HAProxy  # noqa: E402
from devcluster.process import claim_ports, cpu_seconds, free_port  # noqa: E402
from wharf.haproxy import send, servers_state  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

TXN_OPS = 64  # Consul's limit of operations per transaction


def node_of(s: int, i: int, nodes: int) -> int:
    return (3 * s + i) % nodes


def port_of(s: int, i: int) -> int:
    """Instance `i` of app `s` listens here: distinct for every instance, even all on one node."""
    return 20000 + (3 * s + i) % 45000


def address(node: int) -> str:
    return f"127.1.{node // 250}.{node % 250 + 1}"


def instance_ops(s: int, i: int, nodes: int, status: str = "passing", vhost: str | None = None) -> list[dict]:
    """The catalog operations that register instance `i` of app `s` with its check, as an agent would."""
    node = node_of(s, i, nodes)
    sid = f"mesos-{s:08x}-{i:04x}"
    meta = {"marathon_app_id": f"/team/app{s}", "service_port": str(10000 + s), "port_index": "0",
            "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost or f"app{s}.example.com"}
    service = {"ID": sid, "Service": f"team-app{s}", "Address": address(node), "Port": port_of(s, i),
               "Meta": meta}
    return [{"Service": {"Verb": "set", "Node": f"node{node}", "Service": service}},
            check_op(s, i, nodes, status)]


def check_op(s: int, i: int, nodes: int, status: str) -> dict:
    node, sid = node_of(s, i, nodes), f"mesos-{s:08x}-{i:04x}"
    return {"Check": {"Verb": "set", "Check": {"Node": f"node{node}", "CheckID": f"service:{sid}",
                                                "Name": "task health", "Status": status, "ServiceID": sid,
                                                "ServiceName": f"team-app{s}"}}}


def txn(addr: str, ops: list[dict]) -> None:
    for first in range(0, len(ops), TXN_OPS):
        body = json.dumps(ops[first:first + TXN_OPS]).encode()
        request = urllib.request.Request(f"http://{addr}/v1/txn", data=body, method="PUT")
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()


def populate(addr: str, services: int, nodes: int) -> None:
    ops = [{"Node": {"Verb": "set", "Node": {"Node": f"node{n}", "Address": address(n)}}} for n in range(nodes)]
    for s in range(services):
        for i in range(3):
            ops += instance_ops(s, i, nodes)
    txn(addr, ops)


def served(admin: Path, backend: str, addr: str, port: int) -> bool:
    """Whether a slot of `backend` is in rotation at `addr:port`, as the renderer sets it (nothing
    listens at these addresses, so HAProxy's own health check marks the servers down after a
    second: that is not what is timed)."""
    state = servers_state(send(admin, f"show servers state {backend}"))
    return any(name == backend and (s.address, s.port, s.ready) == (addr, port, True)
               for (name, _), s in state.items())


def idle(pid: int, window: float = 0.5) -> bool:
    """Whether a process used under 2% of a core over the next `window` seconds."""
    before = cpu_seconds(pid)
    time.sleep(window)
    return cpu_seconds(pid) - before < 0.02 * window


def timed(change: Any, done: Any, timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    change()
    wait_until(done, timeout, 0.001, "HAProxy to serve the change")
    return (time.perf_counter() - t0) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(services: int, nodes: int, flips: int, news: int) -> dict[str, Any]:
    """Every kind of change at one layout, on a fresh Consul, HAProxy and renderer."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with running(Consul(tmp / "consul", claim_ports({f: None for f in Consul.port_flags}))) as agent, \
                running(HAProxy(tmp / "haproxy", claim_ports({f: None for f in HAProxy.port_flags}))) as hap:
            assert isinstance(hap, HAProxy)
            addr = agent.addr  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            populate(addr, services, nodes)
            registered = time.perf_counter() - t0
            env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "CONSUL_"))},
                   "CONSUL_HTTP_ADDR": addr}
            argv = [sys.executable, "-m", "wharf", "render", "run", "--template", "haproxy", "--dest",
                    str(hap.config), "--http-port", str(free_port()), "--haproxy-socket", str(hap.admin_socket),
                    "--haproxy-master-socket", str(hap.master_socket), "--wait", "0"]
            with open(tmp / "render.log", "w") as log:
                proc = subprocess.Popen(argv, env=env, stderr=log)
                try:
                    return changes(proc, addr, hap.admin_socket, services, nodes, flips, news, registered)
                except Exception:
                    print((tmp / "render.log").read_text()[-3000:], file=sys.stderr)
                    raise
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)


def changes(proc: subprocess.Popen[bytes], addr: str, admin: Path, services: int, nodes: int, flips: int,
            news: int, registered: float) -> dict[str, Any]:
    def backend(s: int) -> str:
        return f"team_app{s}_{10000 + s}"

    def where(s: int, i: int) -> tuple[str, int]:
        return address(node_of(s, i, nodes)), port_of(s, i)

    t0 = time.perf_counter()
    last = services - 1
    wait_until(lambda: served(admin, backend(last), *where(last, 0)), 600, 0.05, "the first render served")
    first = time.perf_counter() - t0
    wait_until(lambda: idle(proc.pid), 120, 0, "the renderer to settle after its first pass")
    found: dict[str, Any] = {"registered_s": registered, "first_s": first}

    def flip(s: int, i: int, status: str) -> float:
        serving = status == "passing"
        return timed(lambda: txn(addr, [check_op(s, i, nodes, status)]),
                     lambda: served(admin, backend(s), *where(s, i)) == serving)

    def new(s: int) -> float:
        return timed(lambda: txn(addr, [op for i in range(3) for op in instance_ops(s, i, nodes)]),
                     lambda: served(admin, backend(s), *where(s, 0)))

    cpu0, flip_ms = cpu_seconds(proc.pid), []
    for k in range(flips):
        s, i = (k * 97) % services, k % 3
        flip_ms += [flip(s, i, "critical"), flip(s, i, "passing")]
    found["flip"] = (flip_ms, (cpu_seconds(proc.pid) - cpu0) * 1000 / len(flip_ms))
    cpu0 = cpu_seconds(proc.pid)
    new_ms = [new(services + k) for k in range(news)]
    found["new"] = (new_ms, (cpu_seconds(proc.pid) - cpu0) * 1000 / max(1, len(new_ms)))
    during = []
    for k in range(news):
        s, victim = services + news + k, (k * 31) % services
        txn(addr, [op for i in range(3) for op in instance_ops(s, i, nodes)])
        wait_until(lambda: any(admin.parent.glob(".haproxy.cfg.*.tmp")), 30, 0.001, "the pass to validate")
        during.append(flip(victim, 1, "critical"))
        wait_until(lambda s=s: served(admin, backend(s), *where(s, 0)), 60, 0.005, "the new service")
        flip(victim, 1, "passing")
    found["during"] = (during, float("nan"))
    return found


GOALS = {"flip": "p99 <= 50 ms (100 on one node), <= 5 ms CPU", "new": "p99 <= 500 ms",
         "during": "<= 50 ms"}
LABELS = {"flip": "health flip (Runtime API)", "new": "new service (one reload)",
          "during": "flip while a pass validates"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="1000x100,5000x100,1000x1",
                        help="SERVICESxNODES, comma separated (default 1000x100,5000x100,1000x1)")
    parser.add_argument("--flips", type=int, default=40, help="instances flipped (each there and back)")
    parser.add_argument("--news", type=int, default=10, help="new services, and flips during their passes")
    args = parser.parse_args()
    table(args.layouts, args.flips, args.news)
    return 0


def table(layouts: str, flips: int, news: int) -> None:
    """Measure and print every layout of `layouts` (`SERVICESxNODES,...`)."""
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; each layout on a fresh Consul 1.8.7 "
          "agent, HAProxy and `wharf render run --wait 0`; warm (the renderer has served the whole catalog "
          "first). Timed: the catalog call until HAProxy's Runtime API shows the change served.")
    print(f"{'layout':>16} {'change':<31} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'cpu ms':>7}  goal")
    for layout in layouts.split(","):
        services, nodes = (int(x) for x in layout.split("x"))
        found = measure(services, nodes, flips, news)
        print(f"{f'{services}x3 / {nodes}n':>16} registered in {found['registered_s']:.1f} s, first render "
              f"served {found['first_s']:.1f} s after")
        for kind in ("flip", "new", "during"):
            values, cpu = found[kind]
            print(f"{'':>16} {LABELS[kind]:<31} {len(values):>4} {pct(values, .5):>8.1f} {pct(values, .99):>8.1f} "
                  f"{max(values):>8.1f} {cpu:>7.1f}  {GOALS[kind]}")


if __name__ == "__main__":
    raise SystemExit(main())
