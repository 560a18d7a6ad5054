"""A deploy, a rollback and a failed deploy each tell the team's webhook (WHARF_NOTIFY_WEBHOOK), one
message per app with its result, images and commit; a webhook that is down delays no deploy."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from devcluster.webhook import Received
from tests.conftest import Endpoint, wharf
from tests.integration.test_marathon_apps import IMAGE, ConfigRepo, app_yaml, live_apps
from tests.integration.test_marathon_apps import repo as repo  # the fixture: a config repository with the hooks
from tests.integration.test_notify import hook as hook  # the fixture: a webhook receiver on loopback
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def bodies(received: Received) -> list[dict[str, Any]]:
    return [body for _, _, body in received.items]


def test_deploy_then_rollback_then_a_failed_deploy_each_tell_the_webhook(
        repo: ConfigRepo, hook: tuple[str, Received], marathon: Endpoint) -> None:
    url, received = hook
    env = {**repo.env, "WHARF_NOTIFY_WEBHOOK": url}
    repo.write("web", app_yaml())
    done = wharf("apps", "deploy", str(repo.work), "--commit", "c0ffee1234", "--timeout", "60", env=env)
    assert done.returncode == 0, done.stderr
    (first,) = wait_for(lambda: bodies(received), 10, "the deploy's message")
    web = repo.app_id("web")
    assert first["wharf"]["kind"] == "deploy" and first["wharf"]["app"] == web and first["wharf"]["result"] == "ok"
    assert first["wharf"]["versions"] == {"from": None, "to": IMAGE}
    assert first["wharf"]["commits"]["config"] == "c0ffee1234"
    assert first["text"].startswith(f"deploy {web} ok") and "c0ffee1" in first["text"]
    assert "secret" not in done.stderr + done.stdout

    repo.write("web", app_yaml(instances=2))
    assert wharf("apps", "deploy", str(repo.work), "--timeout", "60", env=env).returncode == 0
    assert wharf("apps", "rollback", web, "--timeout", "60", env=env).returncode == 0
    wait_for(lambda: len(bodies(received)) == 3, 10, "the rollback's message")
    rollback = bodies(received)[2]["wharf"]
    assert rollback["kind"] == "rollback" and rollback["result"] == "ok" and rollback["app"] == web

    repo.write("web", app_yaml(path="/missing"))  # never healthy: rolled back
    failed = wharf("apps", "deploy", str(repo.work), "--timeout", "3", env=env)
    assert failed.returncode == 1
    last = wait_for(lambda: len(bodies(received)) == 4 and bodies(received)[3]["wharf"], 10, "the failure's message")
    assert last["result"] == "rolled back" and last["app"] == web and last["message"]


def test_a_webhook_that_is_down_delays_no_deploy(repo: ConfigRepo, marathon: Endpoint) -> None:
    """The same scale-up with no webhook and with a dead one: within a second or two of each other
    (waiting for the dead one, as for a live one, would add its 5 s flush)."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo.write("web", app_yaml())
    assert wharf("apps", "deploy", str(repo.work), "--timeout", "60", env=repo.env).returncode == 0
    took = {}
    for instances, env in ((2, repo.env), (3, {**repo.env, "WHARF_NOTIFY_WEBHOOK": f"http://127.0.0.1:{port}/h"})):
        repo.write("web", app_yaml(instances=instances))
        started = time.monotonic()
        done = wharf("apps", "deploy", str(repo.work), "--timeout", "60", env=env)
        took[instances] = time.monotonic() - started
        assert done.returncode == 0, done.stderr
    assert live_apps(marathon, repo.group)[repo.app_id("web")]["instances"] == 3
    assert "cannot deliver notifications" in done.stderr and f"127.0.0.1:{port}" in done.stderr
    assert took[3] < took[2] + 2.5, f"with a dead webhook {took[3]:.1f}s, without {took[2]:.1f}s"


def test_bad_notify_settings_change_nothing(repo: ConfigRepo, marathon: Endpoint) -> None:
    repo.write("web", app_yaml())
    done = wharf("apps", "deploy", str(repo.work), env={**repo.env, "WHARF_NOTIFY_SMTP": "127.0.0.1:25"})
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "WHARF_NOTIFY" in done.stderr
    assert repo.app_id("web") not in live_apps(marathon, repo.group)
