"""The renderer's step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

The /web that the git push deployed is in Consul by now (the registrator runs in the background).
`wharf render once` writes the dev cluster's HAProxy and nginx configs from Consul, and /web answers
through HAProxy by its vhost and through nginx. Then `wharf render run` starts in the background (it
keeps the load balancers in step for the later steps, until `--stop` at the end of the demo), and
`wharf apps scale /web` adds an instance: it reaches HAProxy through the Runtime API with no reload
(the master's `show proc` lists the same worker before and after).

    python -m devcluster.demos.render [--stop]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from consul_templates.apply import parse_show_proc
from devcluster.cluster import Cluster
from devcluster.process import free_port, start_pid_file, stop_pid_file
from wharf.consul_http import client as consul_client
from wharf.errors import TimedOut
from wharf.haproxy import send
from wharf.marathon import MarathonClient
from wharf.wait import wait_until

APP_ID = "/web"


def _wait(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    try:
        return wait_until(predicate, seconds, 0.1, what)
    except TimedOut as exc:
        raise SystemExit(f"demo-render: {exc.message}") from None


def _get(address: str, host: str) -> str:
    request = urllib.request.Request(f"http://{address}/", headers={"Host": host, "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return str(response.read().decode().strip())
    except OSError as exc:
        return f"({exc})"


def _show_proc(master: str) -> int:
    """Print the master's `show proc`; return the current worker's pid."""
    text = send(master, "show proc")
    print("$ echo 'show proc' | socat stdio master.sock")
    print("\n".join("    " + line for line in text.strip().splitlines() if line.strip()), flush=True)
    return next(p.pid for p in parse_show_proc(text) if p.kind == "worker" and p.reloads == 0)


def _run(*argv: str) -> None:
    print("$ wharf " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "wharf", *argv], check=True)


def _passing(client: Any, app_id: str = APP_ID) -> list[dict[str, Any]]:
    _, entries = client.health.service(app_id.strip("/").replace("/", "-"), passing=True)
    return [e for e in entries if e["Service"].get("Meta", {}).get("marathon_app_id") == app_id]


def _cycled(metrics_port: int) -> bool:
    """Whether the daemon has finished a cycle (its last-success gauge is set)."""
    try:
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
    except requests.RequestException:
        return False
    return any(line.startswith("wharf_daemon_last_success_timestamp_seconds{") and float(line.split()[-1]) > 0
               for line in text.splitlines())


def _pairs(env: dict[str, str], stats_port: int) -> list[str]:
    """The built-in templates onto the dev cluster's HAProxy and nginx, its stats page on `stats_port`."""
    return ["--template", "haproxy", "--dest", env["WHARF_HAPROXY_CONFIG"], "--template", "nginx",
            "--dest", env["WHARF_NGINX_CONF"], "--stats-port", str(stats_port)]


def run_daemon(state_dir: Path, env: dict[str, str], stats_port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    """`wharf render run` onto the dev cluster of `env` (its Consul, HAProxy and nginx), in the background
    until the demo ends (`stop`), its pid in the state dir, its metrics on `metrics_port`."""
    log_path = state_dir / "render.log"
    print(f"$ wharf render run ... --wait 0  (in the background until the demo ends; log {log_path})", flush=True)
    argv = ["render", "run", *_pairs(env, stats_port), "--wait", "0", "--metrics-port", str(metrics_port)]
    return start_pid_file(state_dir / "render.pid", argv, log_path, env)


def start(state_dir: Path, env: dict[str, str], stats_port: int) -> int:
    client = consul_client(env["CONSUL_HTTP_ADDR"], env.get("CONSUL_HTTP_TOKEN"))
    haproxy_http, nginx_http = env["WHARF_HAPROXY_HTTP"], env["WHARF_NGINX_HTTP"]
    master = env["WHARF_HAPROXY_MASTER_SOCKET"]
    marathon = env["MARATHON_URL"].split(",")[0]
    pairs = _pairs(env, stats_port)

    app = MarathonClient([marathon], timeout=5).app(APP_ID)
    if app is None:
        raise SystemExit(f"demo-render: Marathon has no {APP_ID} (demo-apps deploys it)")
    count = int(app["instances"])
    vhost = str(app["labels"]["HAPROXY_0_VHOST"]).split(",")[0]
    # every app's instances pass their health checks first: one that came to pass later would be a
    # new backend, a reload in the middle of the scale-up below
    apps = MarathonClient([marathon], timeout=5).apps()
    _wait(lambda: all(len(_passing(client, a["id"])) >= int(a["instances"]) for a in apps), 60,
          "every app's instances passing in Consul")
    entries = _passing(client)
    print(f"Consul has {len(entries)} passing {APP_ID} instances (registered by the registrator), "
          f"vhost {vhost}", flush=True)
    _run("render", "check", *pairs)
    _run("render", "once", *pairs)
    print(f"$ curl -H 'Host: {vhost}' http://{haproxy_http}/   ->  {_get(haproxy_http, vhost)}")
    print(f"$ curl -H 'Host: {vhost}' http://{nginx_http}/   ->  {_get(nginx_http, vhost)}", flush=True)

    metrics_port = free_port()
    daemon = run_daemon(state_dir, env, stats_port, metrics_port)
    _wait(lambda: daemon.poll() is not None or _cycled(metrics_port), 60, "the renderer's first cycle")
    if daemon.poll() is not None:
        print(f"demo-render: the renderer exited ({daemon.returncode}); see {state_dir / 'render.log'}")
        return 1
    before = _show_proc(master)
    print(f"HAProxy worker before the scale-up: {before}", flush=True)
    _run("apps", "scale", APP_ID, str(count + 1), "--timeout", "120")
    seen: set[str] = set()

    def all_answer() -> bool:
        seen.add(_get(haproxy_http, vhost))
        return len({s for s in seen if s.startswith("web")}) >= count + 1

    _wait(all_answer, 60, f"{count + 1} instances answering through HAProxy")
    print(f"through HAProxy by vhost {vhost}, over a few requests:")
    for line in sorted(s for s in seen if s.startswith("web")):
        print("   ", line)
    after = _show_proc(master)
    print(f"HAProxy worker after the scale-up: {after} "
          f"({'the same worker: no reload' if after == before else 'a new worker: reloaded'})", flush=True)
    return 0 if after == before else 1


def stop(state_dir: Path) -> int:
    pid_file = state_dir / "render.pid"
    if pid_file.exists():
        print(f"stopping wharf render run (pid {pid_file.read_text().strip()})", flush=True)
        stop_pid_file(pid_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="stop the background renderer")
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    if args.stop:
        return stop(state_dir)
    cluster = Cluster(state_dir)
    state = cluster.read_state()
    if state is None or not cluster.running():
        raise SystemExit("demo-render: no dev cluster running (run make demo)")
    env = cluster.env()
    os.environ.update(env)
    return start(state_dir, env, int(state["ports"]["--haproxy-stats-port"]))


if __name__ == "__main__":
    raise SystemExit(main())
