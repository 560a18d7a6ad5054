"""`wharf jobs sync-kv` and `wharf jobs watch-kv` against the dev cluster's Consul and the Chronos under
test: the jobs go to KV in one transaction of only the changed keys (nothing when Consul is down);
the daemon syncs each new state to Chronos once, refuses a bad value (logged, told, nothing sent)
and keeps running to apply the next good one, telling a webhook each outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.process import claim_ports
from tests.conftest import Endpoint, wharf
from tests.integration.test_chronos_jobs_sync import chain, jobs_in
from tests.integration.test_chronos_jobs_sync import tag as tag  # the fixture: job names apart on a real Chronos
from tests.integration.test_notify import hook as hook  # the fixture: a webhook receiver on loopback
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def consul_env(consul: Any) -> dict[str, str]:
    return {"CONSUL_HTTP_ADDR": consul.addr, **({"CONSUL_HTTP_TOKEN": consul.token} if consul.token else {})}


def sync_kv(repo: Path, prefix: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = wharf("jobs", "sync-kv", str(repo), "--prefix", prefix, "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sync_kv_writes_only_changed_keys_and_nothing_when_consul_is_down(
        consul: Any, tmp_path: Path) -> None:
    prefix = f"wharf-test/jobs-{tmp_path.name}"
    env, kv = consul_env(consul), consul.client().kv
    repo = chain(tmp_path)
    first = sync_kv(repo, prefix, env, "--commit", "c1", "--owner", "team-a")
    assert first == {"prefix": prefix, "jobs": 3, "changed": [
        f"{prefix}/.wharf/commit", f"{prefix}/extract", f"{prefix}/report", f"{prefix}/transform"]}
    stored = json.loads(kv.get(f"{prefix}/transform")[1]["Value"])
    assert stored["parents"] == ["extract"] and stored["container"]["image"] == "wharf/busybox:latest"
    assert {"name": "WHARF_OWNER", "value": "team-a"} in stored["environmentVariables"]

    assert sync_kv(repo, prefix, env, "--commit", "c1", "--owner", "team-a")["changed"] == []

    report = repo / "jobs" / "report.yaml"
    report.write_text(report.read_text().replace("echo reported", "echo reported again"))
    (repo / "jobs" / "transform.yaml").unlink()
    third = sync_kv(repo, prefix, env, "--owner", "team-a")
    assert third["changed"] == [f"{prefix}/report", f"{prefix}/transform"]
    assert kv.get(f"{prefix}/transform")[1] is None
    assert kv.get(f"{prefix}/.wharf/commit")[1]["Value"] == b"c1"  # no --commit: the last one stays

    before = kv.get(prefix, recurse=True)[1]
    report.write_text(report.read_text().replace("echo reported again", "echo once more"))
    down = wharf("jobs", "sync-kv", str(repo), "--prefix", prefix,
                 env={**env, "CONSUL_HTTP_ADDR": f"127.0.0.1:{claim_ports({'--x': None})['--x']}"})
    assert down.returncode == 1 and "Error: cannot reach Consul at http://127.0.0.1:" in down.stderr
    assert kv.get(prefix, recurse=True)[1] == before
    kv.delete(prefix, recurse=True)


def test_bad_notify_settings_stop_the_watcher_at_start() -> None:
    done = wharf("jobs", "watch-kv", "--prefix", "p", env={
        "CHRONOS_URL": "http://127.0.0.1:1", "CONSUL_HTTP_ADDR": "127.0.0.1:1", "WHARF_NOTIFY_SMTP": "127.0.0.1:25"})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "WHARF_NOTIFY_MAIL_FROM" in done.stderr and "started" not in done.stderr


def metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@contextmanager
def watching(*args: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """`wharf <args>` as a daemon, its log lines collected as they come; SIGTERM at the end (exit 0)."""
    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_",
                                                                      "CHRONOS_"))}, **env}
    proc = subprocess.Popen([sys.executable, "-m", "wharf", *args], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        yield proc, lines
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=5)
    assert proc.returncode == 0, "\n".join(lines)
    assert any(" stopped" in line for line in lines)


def logged(lines: list[str], *words: str) -> str | None:
    return next((line for line in lines if all(w in line for w in words)), None)


def test_watch_kv_syncs_each_change_once_refuses_a_bad_value_and_tells_the_webhook(
        consul: Any, chronos: Endpoint, tmp_path: Path, tag: str, hook: tuple[str, Any]) -> None:
    url, received = hook
    prefix = f"wharf-test/jobs-{tmp_path.name}"
    env, kv = {**consul_env(consul), "CHRONOS_URL": chronos.url}, consul.client().kv
    owner = f"test{tag}"
    repo = chain(tmp_path, tag=tag)
    port = claim_ports({"--metrics": None})["--metrics"]

    def said() -> list[dict[str, Any]]:
        return [body["wharf"] for _, _, body in received.items]

    def syncs(outcome: str) -> float:
        return metric(port, f'wharf_jobs_kv_syncs_total{{outcome="{outcome}"}}')

    def cycles_pass(n: int) -> None:
        name = 'wharf_daemon_cycles_total{daemon="jobs-watch-kv",outcome="ok"}'
        start = metric(port, name)
        wait_for(lambda: metric(port, name) >= start + n, 30, f"{n} more watch cycles")

    sync_kv(repo, prefix, env, "--commit", "c0ffee1", "--owner", owner)
    with watching("jobs", "watch-kv", "--prefix", prefix, "--wait", "1", "--metrics-port", str(port),
                  "--owner", owner, env={**env, "WHARF_NOTIFY_WEBHOOK": url}) as (proc, lines):
        jobs = wait_for(lambda: (j := jobs_in(chronos, tag)) and len(j) == 3 and j, 60, "the jobs in Chronos")
        assert jobs["report"]["parents"] == [f"extract{tag}"]
        wait_for(lambda: len(said()) == 3, 15, "one message per job synced")
        cycles_pass(3)  # wake-ups at an index already handled: nothing more sent
        assert syncs("ok") == 1 and len(said()) == 3
        assert sorted((e["app"], e["result"], e["message"]) for e in said()) == [
            (f"extract{tag}", "ok", "create"), (f"report{tag}", "ok", "create"), (f"transform{tag}", "ok", "create")]
        assert {e["commits"]["config"] for e in said()} == {"c0ffee1"}

        key = f"{prefix}/report{tag}"
        assert kv.put(key, "not json")
        line = wait_for(lambda: logged(lines, "bad job in KV", key), 30, "the bad value logged")
        assert "not JSON" in line
        refused = wait_for(lambda: len(said()) == 4 and said()[3], 15, "the refusal's message")
        assert refused["result"] == "failed" and refused["app"] == key and key in refused["message"]
        assert syncs("refused") == 1 and proc.poll() is None
        assert jobs_in(chronos, tag)["report"]["command"] == "echo reported"

        report = repo / "jobs" / "report.yaml"
        report.write_text(report.read_text().replace("echo reported", "echo reported again"))
        assert sync_kv(repo, prefix, env, "--owner", owner)["changed"] == [key]
        wait_for(lambda: jobs_in(chronos, tag)["report"]["command"] == "echo reported again", 60,
                 "the next good write applied")
        last = wait_for(lambda: len(said()) == 5 and said()[4], 15, "the update's message")
        assert (last["app"], last["result"], last["message"]) == (f"report{tag}", "ok", "update")
        cycles_pass(2)
        assert syncs("ok") == 2 and len(said()) == 5 and proc.poll() is None
    kv.delete(prefix, recurse=True)
