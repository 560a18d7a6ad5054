"""The registrator's step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

Starts `wharf registrator run` in the background (it keeps running for the later steps), runs one
busybox httpd of its own with `SERVICE_*` labels and an HTTP check, waits until that one passes and
every running Marathon task (the apps the deploy step pushed) is registered at its agent's address,
then prints `wharf registrator list`. `--stop`, at the end of the demo, prints the list again,
removes its container and stops the daemon.

    python -m devcluster.demos.registrator [--stop]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

from devcluster.cluster import Cluster
from devcluster.docker_engine import BASE_IMAGE
from devcluster.process import free_port, start_pid_file, stop_pid_file
from wharf.errors import TimedOut
from wharf.marathon import MarathonClient
from wharf.wait import wait_until

NAME = "demo-web"


def _wharf(*argv: str, capture: bool = False) -> str:
    done = subprocess.run([sys.executable, "-m", "wharf", *argv], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout or ""


def _waiting_for(env: dict[str, str]) -> list[str]:
    """What is not in Consul yet: our web passing, and every running Marathon task's ports."""
    rows = json.loads(_wharf("registrator", "list", "--json", capture=True))
    missing = [] if any(r["name"] == NAME and r["health"] == "passing" for r in rows) else [f"{NAME} passing"]
    marathon = env.get("MARATHON_URL", "").split(",")[0]
    if marathon:
        tasks = MarathonClient([marathon], timeout=5).tasks()
        have = {(r["address"], r["port"]) for r in rows}
        for task in tasks:
            if task.get("state") == "TASK_RUNNING":
                missing += [f"{task['appId']} at {task['host']}:{p}" for p in task.get("ports", [])
                            if (task["host"], p) not in have]
    return missing


def run_daemon(state_dir: Path, env: dict[str, str], *flags: str) -> subprocess.Popen[bytes]:
    """`wharf registrator run` on the cluster of `env` (its DOCKER_HOST, CONSUL_HTTP_ADDR, MARATHON_URL),
    in the background until the demo ends (`stop`), its pid in the state dir, its metrics on a free port
    (registered in Consul, so the dev cluster's Prometheus scrapes it) unless `flags` (more of its
    options) name one."""
    log_path = state_dir / "registrator.log"
    if "--metrics-port" not in flags:
        flags = (*flags, "--metrics-port", str(free_port()))
    argv = ["registrator", "run", "--resync", "30", *flags]
    print(f"$ wharf {' '.join(argv)}  (in the background until the demo ends; log {log_path})", flush=True)
    return start_pid_file(state_dir / "registrator.pid", argv, log_path, env)


def start(state_dir: Path, env: dict[str, str]) -> int:
    log_path = state_dir / "registrator.log"
    daemon = run_daemon(state_dir, env)
    import docker

    client = docker.DockerClient(base_url=env["DOCKER_HOST"])
    port = free_port()
    labels = {"SERVICE_NAME": NAME, "SERVICE_TAGS": "demo", "SERVICE_CHECK_HTTP": "/",
              "SERVICE_CHECK_INTERVAL": "1s"}
    print(f"$ docker run -d --name {NAME} --network host --expose {port} "
          + " ".join(f"-l {k}={v}" for k, v in labels.items()) + f" {BASE_IMAGE} httpd ...", flush=True)
    try:
        client.api.remove_container(NAME, force=True)
    except docker.errors.NotFound:
        pass
    created = client.api.create_container(
        BASE_IMAGE, ["sh", "-c", f"mkdir -p /www && echo hello > /www/index.html && "
                                 f"exec httpd -f -p 127.0.0.1:{port} -h /www"],
        name=NAME, ports=[port], labels=labels, host_config=client.api.create_host_config(network_mode="host"))
    client.api.start(created["Id"])
    client.close()
    missing = ["everything"]

    def settled() -> bool:  # the registrator gone, or everything registered
        if daemon.poll() is not None:
            return True
        missing[:] = _waiting_for(env)
        return not missing

    with suppress(TimedOut):
        wait_until(settled, 90, 0.2, "the demo's registrations")
    if daemon.returncode is not None:
        print(f"demo-registrator: the registrator exited ({daemon.returncode}); see {log_path}")
        return 1
    print("$ wharf registrator list", flush=True)
    _wharf("registrator", "list")
    if missing:
        print(f"demo-registrator: still not in Consul after 90 s: {', '.join(missing)}")
        return 1
    return 0


def stop(state_dir: Path, env: dict[str, str]) -> int:
    print("$ wharf registrator list  (at the end of the demo)", flush=True)
    _wharf("registrator", "list")
    import docker

    client = docker.DockerClient(base_url=env["DOCKER_HOST"])
    try:
        client.api.remove_container(NAME, force=True)
    except docker.errors.NotFound:
        pass
    client.close()
    stop_pid_file(state_dir / "registrator.pid", timeout=10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stop", action="store_true", help="print the list, remove the container, stop the daemon")
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    cluster = Cluster(state_dir)
    if not cluster.running():
        raise SystemExit("demo-registrator: no dev cluster running (run make demo)")
    env: dict[str, Any] = cluster.env()
    os.environ.update(env)
    return stop(state_dir, env) if args.stop else start(state_dir, env)


if __name__ == "__main__":
    sys.exit(main())
