"""`make demo-framework`: two schedulers, a batch run to FINISHED, the leader SIGKILLed, the standby
taking over, a second batch, and the check that nothing was launched twice (against the master).

Expects a running dev cluster (`wharf dev up`, `WHARF_STATE_DIR` set); prints every command it runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from wharf.errors import TimedOut
from wharf.wait import wait_until

WHARF = [sys.executable, "-m", "wharf"]
IMAGE = "wharf/busybox:latest"


def dev_env() -> dict[str, str]:
    out = subprocess.run([*WHARF, "dev", "env"], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    return env


def wharf(env: dict[str, str], *args: str) -> str:
    print("$ wharf " + " ".join(shlex.quote(a) for a in args), flush=True)
    done = subprocess.run([*WHARF, *args], env=env, capture_output=True, text=True)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def rejected(env: dict[str, str], *args: str) -> None:
    """A submit that must be refused as bad input (exit 2), changing nothing."""
    print("$ wharf " + " ".join(shlex.quote(a) for a in args), flush=True)
    done = subprocess.run([*WHARF, *args], env=env, capture_output=True, text=True)
    print(done.stderr, end="", flush=True)
    print(f"(exit {done.returncode})")
    if done.returncode != 2:
        raise SystemExit(f"expected exit 2 (bad input), got {done.returncode}")


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def until(what: str, predicate: Any, timeout: float = 60) -> Any:
    def answered() -> Any:
        try:
            return predicate()
        except OSError:  # not up yet
            return None

    try:
        return wait_until(answered, timeout, 0.2, what)
    except TimedOut:
        raise SystemExit(f"timed out waiting for {what}") from None


def main() -> None:
    env = dev_env()
    logs = Path(env["WHARF_STATE_DIR"]) / "framework-demo"
    logs.mkdir(parents=True, exist_ok=True)
    root = f"/wharf/demo-{int(time.time())}"
    ports = [free_port() for _ in range(2)]
    schedulers = {}
    for port in ports:
        cmd = ["framework", "run", "--zk-path", root, "--api-port", str(port), "--zk-timeout", "4"]
        print("$ wharf " + " ".join(cmd) + " &", flush=True)
        with open(logs / f"scheduler-{port}.log", "wb") as out:
            schedulers[port] = subprocess.Popen([*WHARF, *cmd], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        leader = until("a leader", lambda: next((p for p in ports if get(f"http://127.0.0.1:{p}/v1/leader")["leading"]),
                                                None))
        print(f"leader: the scheduler on port {leader}; standby: {[p for p in ports if p != leader][0]}")
        first = wharf(env, "framework", "submit", "--zk-path", root, "--image", IMAGE, "--cmd", "sleep 1",
                      "--instances", "6", "--cpus", "0.5", "--constraint", "hostname:MAX_PER:2", "--wait").split()
        rejected(env, "framework", "submit", "--zk-path", root, "--image", IMAGE, "--cpus", "64")
        rejected(env, "framework", "submit", "--zk-path", root, "--image", IMAGE, "--constraint", "hostname:NEAR:x")
        rejected(env, "framework", "submit", "--zk-path", root, "--image", "Bad Image!")
        second = wharf(env, "framework", "submit", "--zk-path", root, "--image", IMAGE, "--cmd", "sleep 3",
                       "--instances", "6", "--cpus", "1.5", "--json")
        second_ids = json.loads(second)["ids"]
        until("tasks running", lambda: any(t["state"] == "RUNNING"
                                           for t in get(f"http://127.0.0.1:{leader}/v1/tasks")["tasks"]))
        print(f"$ kill -KILL {schedulers[leader].pid}   # the leader, while the second batch runs and queues")
        killed = time.monotonic()
        schedulers[leader].send_signal(signal.SIGKILL)
        schedulers[leader].wait()
        standby = [p for p in ports if p != leader][0]
        until("the standby to lead", lambda: get(f"http://127.0.0.1:{standby}/v1/leader")["leading"])
        print(f"the standby leads after {time.monotonic() - killed:.1f}s (ZooKeeper session: 4s)")
        until("the second batch", lambda: all(
            t["state"] in ("FINISHED", "FAILED", "KILLED", "LOST")
            for t in get(f"http://127.0.0.1:{standby}/v1/tasks")["tasks"]), 180)
        wharf(env, "framework", "list", "--zk-path", root)
        wharf(env, "framework", "logs", "--zk-path", root, second_ids[0])
        tasks = get(f"http://127.0.0.1:{standby}/v1/tasks")["tasks"]
        master = json.loads(subprocess.run([*WHARF, "dev", "status", "--json"], env=env, capture_output=True,
                                           text=True, check=True).stdout)["services"]["mesos"]["http"]
        state = get(f"{master}/master/state")
        in_master: Counter[str] = Counter()
        for fw in state["frameworks"] + state["completed_frameworks"]:
            for task in fw["tasks"] + fw["completed_tasks"]:
                labels = {lab["key"]: lab["value"] for lab in task["labels"]}
                if "wharf.framework.task" in labels:
                    in_master[labels["wharf.framework.task"]] += 1
        ids = first + second_ids
        twice = [t for t in ids if in_master[t] > 1]
        not_finished = [t["spec"]["id"] for t in tasks if t["state"] != "FINISHED"]
        print(f"{len(ids)} tasks, {sum(in_master[t] for t in ids)} launches in the master's task list; "
              f"launched twice: {len(twice)}; not FINISHED: {len(not_finished)}")
        if twice or not_finished or len(tasks) != len(ids):
            raise SystemExit(1)
    finally:
        for proc in schedulers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
