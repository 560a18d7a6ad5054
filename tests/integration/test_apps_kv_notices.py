"""`wharf apps watch-kv` tells the team's webhook (WHARF_NOTIFY_WEBHOOK) each deploy outcome as it
happens, as `wharf apps deploy` does, and a bad value in KV as a failure naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from devcluster.process import claim_ports
from tests.conftest import Endpoint, wharf
from tests.integration.test_jobs_kv import consul_env, watching
from tests.integration.test_marathon_apps import IMAGE, ConfigRepo, app_yaml, live_apps
from tests.integration.test_marathon_apps import repo as repo  # the fixture: a config repository
from tests.integration.test_notify import hook as hook  # the fixture: a webhook receiver on loopback
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def test_watch_kv_tells_the_webhook_each_deploy_and_each_refusal(
        repo: ConfigRepo, marathon: Endpoint, consul: Any, hook: tuple[str, Any]) -> None:
    url, received = hook
    prefix = f"wharf-test/{repo.group}"
    env = {**repo.env, **consul_env(consul)}
    kv = consul.client().kv
    repo.write("api", app_yaml())
    assert wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, "--commit", "c0ffee1234",
                 env=env).returncode == 0
    port = claim_ports({"--metrics": None})["--metrics"]
    app_id = repo.app_id("api")

    def said() -> list[dict[str, Any]]:
        return [body["wharf"] for _, _, body in received.items]

    try:
        with watching("apps", "watch-kv", "--prefix", prefix, "--wait", "1", "--timeout", "60", "--metrics-port",
                      str(port), env={**env, "WHARF_NOTIFY_WEBHOOK": url}) as (proc, lines):
            (first,) = wait_for(lambda: said() or None, 60, "the deploy's message")
            assert (first["kind"], first["app"], first["result"]) == ("deploy", app_id, "ok")
            assert first["versions"] == {"from": None, "to": IMAGE}
            assert first["commits"]["config"] == "c0ffee1234"
            assert live_apps(marathon, repo.group)[app_id]["labels"]["wharf.commit"] == "c0ffee1234"

            key = f"{prefix}/{repo.group}/api"
            assert kv.put(key, "{}")
            refused = wait_for(lambda: len(said()) == 2 and said()[1], 30, "the refusal's message")
            assert (refused["kind"], refused["app"], refused["result"]) == ("deploy", key, "failed")
            assert f"{key}: id: must hold the Marathon JSON of the app {app_id}" in refused["message"]
            wait_for(lambda: any("bad app in KV" in line and key in line for line in lines), 10, "the refusal logged")
            assert proc.poll() is None
    finally:
        kv.delete(prefix, recurse=True)
