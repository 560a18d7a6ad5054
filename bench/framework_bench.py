"""The framework's figures: launch throughput on 100 agents, scheduler memory, failover over 20 rounds.

1. Throughput, each time the first batch of a freshly started scheduler (a `wharf framework run`
   child process, real ZooKeeper, subscribed and reconciled before the batch is sent), on the Mesos
   stand-in with 100 agents; timed from sending the submit (`POST /v1/tasks`) to the scheduler's
   metrics showing the outcome (polled every 0.1 s):
   - without a Docker engine behind the agents: every launch then fails at once on its agent, so no
     container is started and the figure is the scheduler's alone (offers matched, launches stored
     in ZooKeeper and ACCEPTed, the failure updates stored and acknowledged); 10,000 tasks, and the
     Docker run's size for the same input;
   - with a real Docker engine behind the agents: each task is a `true` container of the local
     busybox base image, really started; 200 tasks (until every one has run and ended).
2. Failover: two schedulers, the stand-in's 3 agents running real containers; 20 times the leader
   is SIGKILLed while tasks queue and run, and a new standby started. Takeover is the time from the
   kill to the standby leading, subscribed with the same FrameworkID and reconciled. At the end no
   task may have been launched twice or lost (the master's task list and the Docker engine's log).

Every figure is measured in the run that prints it; no other tool is run or quoted here.

    python bench/framework_bench.py [throughput] [failover] [--tasks 10000] [--docker-tasks 200]
                                    [--rounds 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from devcluster.cluster import running
from devcluster.docker_engine import BASE_IMAGE, DockerEngine
from devcluster.mesos import MesosStandin
from devcluster.process import claim_ports, free_port
from devcluster.zookeeper import ZooKeeper
from framework.offers import TASK_LABEL

ZK_TIMEOUT = 4.0  # the shortest session ZooKeeper grants with tickTime=2000
GOAL_RATE = 1000.0


def service(stack: ExitStack, kind: type, base: Path) -> Any:
    directory = base / kind.name
    directory.mkdir()
    return stack.enter_context(running(kind(directory, claim_ports({f: None for f in kind.port_flags}))))


class Scheduler:
    def __init__(self, base: Path, zk: str, master: str, root: str) -> None:
        self.api_port, self.metrics_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MESOS_"))}
        env.update(WHARF_ZK=zk, MESOS_MASTER=master, WHARF_LOG_LEVEL=os.environ.get("WHARF_LOG_LEVEL", "info"))
        self.log = base / f"scheduler-{self.api_port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wharf", "framework", "run", "--zk-path", root, "--api-port",
                 str(self.api_port), "--metrics-port", str(self.metrics_port), "--zk-timeout", str(ZK_TIMEOUT)],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        until(lambda: self.get("/v1/leader") is not None, 60)

    def get(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                for line in resp.read().decode().splitlines():
                    if line.startswith(name + " ") or (line.startswith(name) and "{" in name):
                        return float(line.rsplit(" ", 1)[1])
        except OSError:
            pass
        return 0.0

    def ready_leader(self) -> bool:
        answer = self.get("/v1/leader")
        return bool(answer and answer["leading"] and self.metric("wharf_framework_subscribed") == 1
                    and self.metric("wharf_framework_reconciling_tasks") == 0)

    def rss_mb(self) -> tuple[float, float]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


SUBMIT_CHUNK = 1000  # tasks per submit


def until(predicate: Any, timeout: float, interval: float = 0.05) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start


def throughput(base: Path, zk: str, tasks: int, agents: int = 100, docker: DockerEngine | None = None) -> None:
    run = f"{'docker' if docker else 'nodocker'}-{tasks}"
    with ExitStack() as stack:
        mesos = MesosStandin(agents=agents, zk=f"zk://{zk}/mesos-{run}", state_dir=base / f"mesos-{run}",
                             docker_host=docker.host if docker else None).start()
        stack.callback(mesos.stop)
        scheduler = Scheduler(base, zk, mesos.zk_url or "", f"/wharf-bench/throughput-{run}")
        stack.callback(scheduler.stop)
        until(scheduler.ready_leader, 60)
        started = time.monotonic()
        ids = []
        for first in range(0, tasks, SUBMIT_CHUNK):  # a submit is one ZooKeeper transaction: ~1,700 fit
            body = {"image": BASE_IMAGE, "cmd": "true", "instances": min(SUBMIT_CHUNK, tasks - first),
                    "cpus": 0.04, "mem": 32}
            answer = scheduler.get("/v1/tasks", body)
            assert answer and "ids" in answer, answer
            ids += answer["ids"]
        stored = time.monotonic() - started
        assert len(ids) == tasks, len(ids)
        until(lambda: scheduler.metric("wharf_framework_tasks_launched_total") >= tasks, 900, 0.1)
        launched = time.monotonic() - started
        if docker is None:
            own = sum(scheduler.metric(f'wharf_framework_loop_seconds_total{{phase="{p}"}}')
                      for p in ("decide", "store"))
            calls = scheduler.metric('wharf_framework_loop_seconds_total{phase="call"}')
            rss, peak = scheduler.rss_mb()
            print(f"throughput, no Docker engine (every launch fails at once on its agent; no container started): "
                  f"{tasks:,} tasks on {agents} agents: submits of {SUBMIT_CHUNK:,} stored in {stored:.2f}s; "
                  f"all matched and launched (ACCEPTed) {launched:.2f}s after the first submit (polled every 0.1s) = "
                  f"{tasks / launched:,.0f} tasks/s (goal >= {GOAL_RATE:,.0f}/s)")
            print(f"  of that, the scheduler's own work (matching; storing the submit and the launches in "
                  f"ZooKeeper) took {own:.2f}s, and its calls to the master (ACCEPTs, and acknowledgements of the "
                  f"failure updates arriving meanwhile) {calls:.2f}s; scheduler RSS {rss:.0f} MB (peak {peak:.0f} MB)")
            return
        started_metric = 'wharf_framework_status_updates_total{state="TASK_RUNNING"}'
        ended = {state: f'wharf_framework_status_updates_total{{state="{state}"}}'
                 for state in ("TASK_FINISHED", "TASK_FAILED", "TASK_LOST", "TASK_KILLED", "TASK_ERROR")}
        all_started: float | None = None
        seen, moved = (0.0, 0.0), time.monotonic()
        while (done := sum(scheduler.metric(m) for m in ended.values())) < tasks:
            if (now := (scheduler.metric(started_metric), done)) != seen:
                seen, moved = now, time.monotonic()
            if all_started is None and seen[0] >= tasks:
                all_started = time.monotonic() - started
            if time.monotonic() - moved > 120:
                raise SystemExit(f"no task started or ended for 120s ({seen[0]:.0f} started, {done:.0f} ended "
                                 f"of {tasks}): see the scheduler's log and the stand-in's errors")
            time.sleep(0.1)
        all_ended = time.monotonic() - started
        if all_started is None and scheduler.metric(started_metric) >= tasks:
            all_started = all_ended  # the last ones started and ended between two polls
        counts = {state[5:]: int(scheduler.metric(m)) for state, m in ended.items()}
        outcome = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
        started_text = (f"all containers started (TASK_RUNNING) {all_started:.2f}s after = "
                        f"{tasks / all_started:,.1f} tasks/s started" if all_started is not None else
                        f"only {scheduler.metric(started_metric):.0f} of {tasks} containers started")
        print(f"throughput, real Docker engine (each task a `true` container of {BASE_IMAGE}, host network, one "
              f"engine behind all {agents} agents; polled every 0.1s): {tasks:,} tasks: submits of "
              f"{SUBMIT_CHUNK:,} stored in {stored:.2f}s; all ACCEPTed {launched:.2f}s after the first submit; "
              f"{started_text}; all ended "
              f"{all_ended:.2f}s after ({outcome})")


def _count(scheduler: Scheduler, state: str) -> int:
    answer = scheduler.get(f"/v1/tasks?state={state}")
    return len(answer["tasks"]) if answer else 0


def failover(stack: ExitStack, base: Path, zk: str, docker: DockerEngine, rounds: int = 20) -> None:
    mesos = MesosStandin(agents=3, zk=f"zk://{zk}/mesos-bench2", docker_host=docker.host,
                         state_dir=base / "mesos2", heartbeat_interval=1.0).start()
    stack.callback(mesos.stop)
    root = "/wharf-bench/failover"
    live = [Scheduler(base, zk, mesos.zk_url or "", root), Scheduler(base, zk, mesos.zk_url or "", root)]
    stack.callback(lambda: [s.stop() for s in live])
    client = docker.client()
    ran: Counter[str] = Counter()
    stream = client.events(decode=True, filters={"type": "container", "event": "start", "label": TASK_LABEL})

    def watch() -> None:  # live: the engine keeps only its last 256 events
        try:
            for event in stream:
                ran[event["Actor"]["Attributes"][TASK_LABEL]] += 1
        except Exception:  # noqa: BLE001 - closed at the end
            pass

    threading.Thread(target=watch, daemon=True).start()
    until(lambda: any(s.ready_leader() for s in live), 60)
    leader = next(s for s in live if s.ready_leader())
    body = {"image": BASE_IMAGE, "cmd": "sleep 2", "cpus": 1.5, "mem": 64}
    ids: list[str] = []
    takeovers = []
    for _ in range(rounds):
        ids += leader.get("/v1/tasks", {**body, "instances": 8})["ids"]  # more than fit: some queue
        until(lambda: _count(leader, "RUNNING") > 0, 60)  # noqa: B023 - waited on at once
        leader.stop(signal.SIGKILL)
        killed = time.monotonic()
        live.remove(leader)
        live.append(Scheduler(base, zk, mesos.zk_url or "", root))
        until(lambda: any(s.ready_leader() for s in live), 120, 0.02)
        takeovers.append(time.monotonic() - killed)
        leader = next(s for s in live if s.ready_leader())
    until(lambda: _count(leader, "FINISHED") + _count(leader, "FAILED") + _count(leader, "LOST") >= len(ids), 600, 0.5)
    finished = _count(leader, "FINISHED")
    with urllib.request.urlopen(f"{mesos.url}/master/state", timeout=10) as resp:
        state = json.loads(resp.read())
    in_master: Counter[str] = Counter()
    for fw in state["frameworks"] + state["completed_frameworks"]:
        for task in fw["tasks"] + fw["completed_tasks"]:
            labels = {lab["key"]: lab["value"] for lab in task["labels"]}
            in_master[labels.get(TASK_LABEL, "")] += 1
    until(lambda: sum(ran.values()) >= len(ids), 30)
    stream.close()
    client.close()
    twice = sorted(t for t in ids if in_master[t] > 1 or ran[t] > 1)
    lost = sorted(t for t in ids if in_master[t] == 0 or ran[t] == 0)
    print(f"failover: {rounds} rounds of SIGKILL on the leader with {len(ids)} tasks queued and running "
          f"(ZooKeeper session {ZK_TIMEOUT:g}s): takeover p50 {statistics.median(takeovers):.2f}s, "
          f"max {max(takeovers):.2f}s (goal <= session + 2s = {ZK_TIMEOUT + 2:g}s)")
    print(f"failover: {finished}/{len(ids)} FINISHED; launched twice: {len(twice)} {twice[:5]}; "
          f"lost: {len(lost)} {lost[:5]} (master tasks {sum(in_master.values())}, containers {sum(ran.values())})")
    if twice or lost or finished != len(ids):
        raise SystemExit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help="throughput and/or failover (default: both)")
    parser.add_argument("--tasks", type=int, default=int(os.environ.get("BENCH_TASKS", 10000)),
                        help="tasks of the run without a Docker engine (default 10000, or $BENCH_TASKS)")
    parser.add_argument("--docker-tasks", type=int, default=200, help="tasks of the run with a real Docker engine")
    parser.add_argument("--rounds", type=int, default=20, help="failover rounds")
    parser.add_argument("--quick", action="store_true", help="a quick check: --tasks 1000 --docker-tasks 20 --rounds 2")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.docker_tasks, args.rounds = 1000, 20, 2
    which = args.which or ["throughput", "failover"]
    if set(which) - {"throughput", "failover"}:
        parser.error(f"unknown part {sorted(set(which) - {'throughput', 'failover'})}: throughput or failover")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("wharf.devcluster").setLevel(logging.ERROR)  # every launch without Docker warns
    with tempfile.TemporaryDirectory(prefix="wharf-bench-framework-") as tmp, ExitStack() as stack:
        base = Path(os.environ.get("BENCH_DIR") or tmp)
        zk = service(stack, ZooKeeper, base).endpoints()["address"]
        docker = service(stack, DockerEngine, base)
        if "throughput" in which:
            for size in sorted({args.tasks, args.docker_tasks}, reverse=True):
                throughput(base, zk, size)
            throughput(base, zk, args.docker_tasks, docker=docker)
        if "failover" in which:
            failover(stack, base, zk, docker, args.rounds)
    print("(no competitor figures for these in the issue; Chronos loses task state on leader change, #811)")


if __name__ == "__main__":
    main()
