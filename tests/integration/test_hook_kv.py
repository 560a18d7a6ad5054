"""The config repository's hooks with `--kv`: a push is checked as always, then written into Consul
KV (apps under PREFIX/apps, jobs under PREFIX/jobs) instead of deployed; the two watchers deploy it
to Marathon and Chronos. A push the check refuses writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Endpoint, wharf
from tests.integration.test_chronos_jobs_sync import chain, jobs_in
from tests.integration.test_chronos_jobs_sync import tag as tag  # the fixture: job names apart on a real Chronos
from tests.integration.test_jobs_kv import consul_env, watching
from tests.integration.test_marathon_apps import ConfigRepo, api, app_yaml, git, live_apps, marathon_url
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def test_a_push_goes_into_kv_and_the_watchers_deploy_it(tmp_path: Path, marathon: Endpoint, chronos: Endpoint,
                                                        consul: Any, tag: str) -> None:
    repo = ConfigRepo(tmp_path, marathon_url(marathon))
    prefix, kv = f"wharf-test/{repo.group}", consul.client().kv
    env = {**repo.env, **consul_env(consul), "CHRONOS_URL": chronos.url}
    installed = wharf("apps", "hook", "install", str(repo.bare), "--kv", f"/{prefix}/", env=env)
    assert installed.returncode == 0, installed.stderr
    assert f"`wharf jobs watch-kv --prefix {prefix}/jobs`" in installed.stdout
    repo.env = env
    repo.write("web", app_yaml())
    chain(repo.work, tag=tag)  # jobs/: a scheduled job and two dependents
    pushed = repo.push("web and three jobs")
    assert pushed.returncode == 0, pushed.stderr
    assert f"wharf: apps: sync {repo.head()[:12]} into Consul KV under {prefix}/" in pushed.stderr
    held = json.loads(kv.get(f"{prefix}/apps/{repo.group}/web")[1]["Value"])
    assert held["id"] == repo.app_id("web")
    assert kv.get(f"{prefix}/jobs/.wharf/commit")[1]["Value"].decode() == repo.head()
    assert sorted(k.rsplit("/", 1)[1] for k in kv.get(f"{prefix}/jobs/", keys=True)[1]) == sorted(
        ["commit", f"extract{tag}", f"report{tag}", f"transform{tag}"])
    assert live_apps(marathon, repo.group) == {} and jobs_in(chronos, tag) == {}  # written, not deployed

    repo.write("web", app_yaml(cmd="exit 3", instances=-1))
    refused = repo.push("a bad spec")
    assert refused.returncode != 0 and "push rejected" in refused.stderr
    assert json.loads(kv.get(f"{prefix}/apps/{repo.group}/web")[1]["Value"]) == held
    git("reset", "-q", "--hard", "HEAD~1", cwd=repo.work)

    try:
        with watching("apps", "watch-kv", "--prefix", f"{prefix}/apps", "--wait", "1", env=env), \
                watching("jobs", "watch-kv", "--prefix", f"{prefix}/jobs", "--wait", "1", env=env):
            app = wait_for(lambda: (a := live_apps(marathon, repo.group).get(repo.app_id("web")))
                           and a["tasksHealthy"] == 1 and a, 60, "the app healthy in Marathon")
            assert app["labels"]["wharf.commit"] == repo.head()
            wait_for(lambda: len(jobs_in(chronos, tag)) == 3, 60, "the jobs in Chronos")
    finally:
        kv.delete(prefix, recurse=True)
        for app_id in live_apps(marathon, repo.group):
            api(marathon, "DELETE", f"/v2/apps{app_id}", params={"force": "true"})
